"""L2D: t = 0 is the base, the base never changes, the solver steps are what they claim, names are
validated, and a saved flow loads back to the same logits."""

from __future__ import annotations

import pytest
import torch

from harness.ground.errors import BenchError
from methods.l2d.solve import FlowSettings, next_token_logits
from methods.registry import get_method, load_adapter
from tests.causal_models import make_causal_lm, perturb

SMALL = {"rank": 4, "rep_size": 8, "embed_dim": 16, "sigma": 16.0}
KINDS = ["tiny-ar", "llama", "qwen2"]


def _ids(lm, batch=3, length=9, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(4, lm.tokenizer.vocab_size, (batch, length), generator=generator)


def _l2d(lm, **fields):
    method = get_method("l2d")
    return method.apply(lm, method.config(**{**SMALL, **fields}))


@pytest.mark.parametrize("kind", KINDS)
def test_t0_and_fresh_gate_give_the_base_logits_exactly(kind, one_torch_thread):
    lm = make_causal_lm(kind)
    ids = _ids(lm)
    attention = torch.ones_like(ids)
    attention[0, :3] = 0  # a left-padded row too
    with torch.no_grad():
        base = lm(ids, attention).clone()
        adapter = _l2d(lm)
        fresh = lm(ids, attention, flow_time=torch.full(ids.shape, 0.7))
        assert torch.equal(fresh, base)  # adaLN-Zero and the zero gate: exactly the base
        perturb(adapter.adapter_parameters())
        trained_t0 = lm(ids, attention, flow_time=torch.zeros(ids.shape))
        moved = lm(ids, attention, flow_time=torch.full(ids.shape, 0.7))
    assert torch.equal(trained_t0, base)  # g(0) - g(0) = 0 whatever the flow weights
    assert not torch.allclose(moved, base)  # the flow does act at t > 0


def test_training_moves_the_flow_and_never_a_base_weight(one_torch_thread):
    from harness.config.cell import TrainConfig
    from harness.processes.training import train_adapter

    lm = make_causal_lm("tiny-ar")
    before = {k: v.clone() for k, v in lm.backbone.state_dict().items()}
    adapter = _l2d(lm)
    flow_before = [p.detach().clone() for p in adapter.adapter_parameters()]
    data = [(lm.tokenizer.encode(f"Q{i}:"), lm.tokenizer.encode(str(i % 7))) for i in range(8)]
    config = TrainConfig(steps=3, lr=1e-2, batch_size=4, grad_accum=1, val_every=10)
    train_adapter(lm, adapter, data, data[:2], config, seed=0)
    after = lm.backbone.base.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    moved = [
        not torch.equal(a, b)
        for a, b in zip(adapter.adapter_parameters(), flow_before, strict=True)
    ]
    assert any(moved)
    assert not any(p.requires_grad for p in lm.backbone.base.parameters())


def _state(lm, ids):
    from transformers import DynamicCache

    cache = DynamicCache(config=lm.backbone.base.config)
    state, _ = lm.backbone.main(ids, torch.ones_like(ids), cache, n_query=1)
    return state


def test_euler_one_step_is_one_explicit_update(one_torch_thread):
    from transformers import DynamicCache

    lm = make_causal_lm("tiny-ar")
    adapter = _l2d(lm)
    perturb(adapter.adapter_parameters())
    model, ids = lm.backbone, _ids(lm, batch=2, length=6)
    settings = FlowSettings(steps=1, solver="euler", generator=torch.Generator().manual_seed(5))
    cache = DynamicCache(config=model.base.config)
    with torch.no_grad():
        got, evaluations = next_token_logits(model, ids, torch.ones_like(ids), cache, settings)
        state = _state(lm, ids)
        x0 = 16.0 * torch.randn((2, 1, 8), generator=torch.Generator().manual_seed(5))
        zero, one = torch.zeros(2, 1), torch.ones(2, 1)
        x1_hat = model.represent(model.flow_logits(state, x0, zero).argmax(-1))
        x1 = x0 + 1.0 * (x1_hat - x0) / (1 - 0.0)  # one Euler step of dt = 1 from t = 0
        want = model.flow_logits(state, x1, one)[:, -1]
    assert evaluations == 2  # one velocity, one final forward
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_midpoint_one_step_by_hand_and_the_releases_fifteen_evaluations(one_torch_thread):
    from transformers import DynamicCache

    lm = make_causal_lm("tiny-ar")
    adapter = _l2d(lm)
    perturb(adapter.adapter_parameters())
    model, ids = lm.backbone, _ids(lm, batch=2, length=6)

    def velocity(state, x, t):
        target = model.represent(model.flow_logits(state, x, torch.full((2, 1), t)).argmax(-1))
        return (target - x) / (1 - t)

    with torch.no_grad():
        settings = FlowSettings(1, "midpoint", torch.Generator().manual_seed(3))
        cache = DynamicCache(config=model.base.config)
        got, evaluations = next_token_logits(model, ids, torch.ones_like(ids), cache, settings)
        state = _state(lm, ids)
        x0 = 16.0 * torch.randn((2, 1, 8), generator=torch.Generator().manual_seed(3))
        half = x0 + 0.5 * velocity(state, x0, 0.0)
        x1 = x0 + velocity(state, half, 0.5)
        want = model.flow_logits(state, x1, torch.ones(2, 1))[:, -1]
        cache = DynamicCache(config=model.base.config)
        _, fifteen = next_token_logits(
            model, ids, torch.ones_like(ids), cache, FlowSettings(7, "midpoint")
        )
    assert evaluations == 3
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert fifteen == 15  # midpoint over the release's 8-point grid: 2 * 7 + 1


def test_bad_solver_schedule_and_steps_fail_with_one_line():
    from harness.config.cell import EvalConfig

    with pytest.raises(BenchError, match="solver 'rk5' is not one of: euler, midpoint, rk4"):
        EvalConfig(solver="rk5")
    with pytest.raises(BenchError, match="l2d_steps must be a positive integer"):
        EvalConfig(l2d_steps=0)
    with pytest.raises(BenchError, match="schedule 'cosine' is not one of: uniform, cosmap"):
        get_method("l2d").config(schedule="cosine")
    with pytest.raises(BenchError, match="not flow projections"):
        get_method("l2d").config(target_modules=("k_proj",))


def test_cosmap_schedule_is_the_releases_map():
    from methods.l2d.method import schedule_time

    u = torch.tensor([0.0, 0.25, 0.5, 0.75])
    want = 1 - 1 / (1 + torch.tan(torch.pi * u / 2))
    torch.testing.assert_close(schedule_time(u, "cosmap"), want)
    assert torch.equal(schedule_time(u, "uniform"), u)


def test_save_and_load_give_the_same_logits(tmp_path, one_torch_thread):
    lm = make_causal_lm("llama")
    adapter = _l2d(lm, guidance=2.0)
    perturb(adapter.adapter_parameters())
    ids = _ids(lm)
    t = torch.full(ids.shape, 0.4)
    with torch.no_grad():
        want = lm(ids, flow_time=t, generator=torch.Generator().manual_seed(0))
    adapter.save(tmp_path / "adapter")
    fresh = make_causal_lm("llama")
    loaded = load_adapter(fresh, tmp_path / "adapter")
    with torch.no_grad():
        got = fresh(ids, flow_time=t, generator=torch.Generator().manual_seed(0))
    assert loaded.config == adapter.config
    assert torch.equal(got, want)
    assert loaded.parameter_counts().adapter == adapter.parameter_counts().adapter


def test_flow_decoding_counts_flow_evaluations_per_token(one_torch_thread):
    from harness.processes.causal.decode import greedy_generate
    from harness.processes.masked.sampling import SamplingStats

    lm = make_causal_lm("tiny-ar")
    perturb(_l2d(lm).adapter_parameters())
    stats = SamplingStats()
    prompts = [lm.tokenizer.encode("ab"), lm.tokenizer.encode("abcd")]
    out = greedy_generate(lm, prompts, 4, FlowSettings(2, "rk4"), stats)
    assert len(out) == 2
    # rk4 (torchdiffeq's 3/8 rule): 4 stages per interval, but the last one lands on t = 1,
    # where v = 0 without a forward: 4 + 3, plus the final forward
    assert stats.flow_evals_per_token == 8


def test_methods_refuse_the_wrong_kind_of_base():
    from methods.registry import check_serves

    with pytest.raises(BenchError, match="method 'nara' adapts masked-diffusion bases"):
        check_serves(get_method("nara"), "tiny-ar", "autoregressive")
    with pytest.raises(BenchError, match="method 'l2d' adapts autoregressive bases"):
        check_serves(get_method("l2d"), "tiny", "masked-diffusion")
    check_serves(get_method("lora"), "tiny-ar", "autoregressive")


@pytest.mark.parametrize("name", ["l2d-steps", "l2d-schedule", "l2d-main"])
def test_l2d_presets_expand_on_the_causal_bases(name):
    from harness.run.grid import make_grid, sampling_variants
    from reports.presets import for_model, load_preset

    preset = load_preset(name)
    assert preset["model"] == "tiny-ar" and "l2d" in preset["methods"]
    for model, flows in (("tiny-ar", 5 * 3 + 1), ("llama-3.2-1b-instruct", 6 * 3 + 1)):
        grid = make_grid(for_model(preset, model))
        cells = grid.cells()
        assert {c.method for c in cells} == set(preset["methods"])
        variants = {c.method: len(sampling_variants(grid, c)) for c in cells}
        if name == "l2d-steps":  # fixed solvers x steps, the adaptive one once; LoRA once
            assert variants == {"base": 1, "lora": 1, "l2d": flows}


def test_flow_scoring_lines_up_with_the_base_positions(one_torch_thread):
    """A fresh flow's logits are the base's at every flow state, so its likelihood of a
    continuation (one flow per scored position, all at once) must be the base's exactly."""
    from harness.processes.causal.likelihood import causal_loglikelihood

    lm = make_causal_lm("qwen2")
    prefix, target = [5, 6, 7, 8], [9, 10, 11]
    want = causal_loglikelihood(lm, prefix, target).loglik
    _l2d(lm)
    got = causal_loglikelihood(lm, prefix, target, FlowSettings(2, "euler")).loglik
    assert got == pytest.approx(want, abs=1e-5)
