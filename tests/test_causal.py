"""Autoregressive bases: cached greedy decoding, exact likelihood, next-token loss, LoRA through
peft, grids that pair a method with a base it cannot serve, and a whole L2D grid end to end."""

from __future__ import annotations

import pytest
import torch

from harness.ground.errors import BenchError
from harness.processes.causal.decode import greedy_generate
from harness.processes.causal.likelihood import causal_loglikelihood
from harness.processes.causal.objective import causal_batch
from methods.registry import get_method
from tests.causal_models import make_causal_lm, save_tiny_ar


def _reference_greedy(lm, prompt, n):
    """Recompute the whole sequence for every token: no cache, no padding."""
    ids = list(prompt)
    out = []
    for _ in range(n):
        logits = lm(torch.tensor([ids]))
        token = int(logits[0, -1].argmax())
        out.append(token)
        if token == lm.tokenizer.eos_token_id:
            break
        ids.append(token)
    eos = lm.tokenizer.eos_token_id
    return out[: out.index(eos)] if eos in out else out


@pytest.mark.parametrize("kind", ["tiny-ar", "qwen2"])
def test_cached_left_padded_greedy_equals_recomputing_every_token(kind, one_torch_thread):
    lm = make_causal_lm(kind)
    tok = lm.tokenizer
    prompts = [tok.encode("Bags of 3,5"), tok.encode("x"), tok.encode("Q: 2+3=")]
    with torch.no_grad():
        got = greedy_generate(lm, prompts, 6)
        want = [_reference_greedy(lm, p, 6) for p in prompts]
    assert got == want


def test_loglikelihood_is_the_sum_of_token_log_probabilities(one_torch_thread):
    lm = make_causal_lm("llama")
    prefix, target = [5, 6, 7], [8, 9]
    with torch.no_grad():
        logp = torch.log_softmax(lm(torch.tensor([prefix + target])), dim=-1)[0]
    want = float(logp[2, 8] + logp[3, 9])
    assert causal_loglikelihood(lm, prefix, target).loglik == pytest.approx(want, abs=1e-5)


def test_next_token_loss_scores_the_answer_and_one_eos():
    lm = make_causal_lm("tiny-ar")
    ids, scored = causal_batch([([5, 6], [7]), ([5], [7, 8, 9])], lm.tokenizer, None)
    eos = lm.tokenizer.eos_token_id
    assert ids.tolist() == [[5, 6, 7, eos, eos], [5, 7, 8, 9, eos]]
    assert scored.tolist() == [
        [False, False, True, True, False],
        [False, True, True, True, True],
    ]


def test_lora_on_a_causal_base_trains_and_decodes_through_peft(one_torch_thread):
    from harness.config.cell import TrainConfig
    from harness.processes.training import train_adapter

    lm = make_causal_lm("tiny-ar")
    method = get_method("lora")
    adapter = method.apply(lm, method.config(rank=4))
    tok = lm.tokenizer
    data = [(tok.encode(f"n{i}="), tok.encode(str(i % 3))) for i in range(16)]
    config = TrainConfig(steps=12, lr=2e-2, batch_size=8, grad_accum=1, val_every=12)
    result = train_adapter(lm, adapter, data, data[:4], config, seed=0)
    assert result.curve[-1]["loss"] < result.curve[0]["loss"]
    assert len({b["weighted_loss"] for b in result.val_bins}) == 1  # no flow: one value
    with torch.no_grad():
        out = greedy_generate(lm, [tok.encode("n1=")], 3)
        assert out == [_reference_greedy(lm, tok.encode("n1="), 3)]


@pytest.fixture(scope="module")
def ar_folder(tmp_path_factory):
    return save_tiny_ar(tmp_path_factory.mktemp("tiny-ar") / "base")


def test_grids_pairing_a_method_with_a_base_it_cannot_serve_stop(ar_folder):
    from harness.run.grid import make_grid

    with pytest.raises(BenchError, match="method 'nara' adapts masked-diffusion bases"):
        make_grid({"model": str(ar_folder), "methods": ["lora", "nara"]}).cells()
    with pytest.raises(BenchError, match="method 'l2d' adapts autoregressive bases"):
        make_grid({"model": "tiny", "methods": ["l2d"]}).cells()
    with pytest.raises(BenchError, match="eval.l2d_steps"):
        make_grid({"model": str(ar_folder), "methods": ["lora"], "steps": [4]}).cells()


def test_an_l2d_grid_runs_end_to_end_and_records_flow_evaluations(
    ar_folder, tmp_path, one_torch_thread
):
    from harness.run.cell import CellRequest
    from harness.run.executors.inprocess import InProcessExecutor
    from harness.run.grid import make_grid, sampling_steps, sampling_variants
    from harness.run.runner import run_grid
    from results.store import load_records

    spec = {
        "model": str(ar_folder),
        "methods": ["base", "lora", "l2d"],
        "tasks": ["synth_math_unseen"],
        "set": {
            "train.steps": [2],
            "train.val_every": [2],
            "train.val_examples": [4],
            "train.noise_bins": [2],
            "eval.gen_length": [4],
            "eval.l2d_steps": [1, 2],
            "eval.solver": ["euler", "dopri5"],
        },
        "limit": 4,
    }
    grid = make_grid(spec)
    requests = [
        CellRequest(c, sampling_steps(grid, c), sampling_variants(grid, c)) for c in grid.cells()
    ]
    assert [len(r.variants()) for r in requests] == [1, 1, 3]  # adaptive: once, steps ignored
    # An adaptive solver on a barely trained flow may need thousands of steps: run the fixed ones.
    requests[2].samplers = [v for v in requests[2].samplers if v["solver"] == "euler"]
    summary = run_grid(requests, tmp_path / "run", grid.to_spec(), InProcessExecutor("cpu"))
    assert not summary.failed
    records = {r.method: r for r in load_records([tmp_path / "run"])}
    labels = {s.sampler for s in records["l2d"].scores if s.sampling}
    assert labels == {"flow=euler:1", "flow=euler:2"}
    per_token = {
        s.sampler: s.sampling["flow_evals_per_token"] for s in records["l2d"].scores if s.sampling
    }
    assert per_token["flow=euler:1"] == 2 and per_token["flow=euler:2"] == 3
    assert {s.sampler for s in records["lora"].scores if s.sampling} == {"plain"}
    assert records["l2d"].costs.trainable_params > records["lora"].costs.trainable_params
    from reports.build import build_report

    report = build_report([tmp_path / "run"], tmp_path / "report", make_plots=True).read_text()
    assert "## L2D: flow steps and solvers" in report
    assert "## Fast sampling" not in report  # flow settings are not fast-sampling settings
    assert (tmp_path / "report" / "l2d_flow.png").is_file()


def test_an_autoregressive_alias_off_the_hub_stops_with_one_line(monkeypatch):
    import harness.models.loader as loader
    from harness.models.loader import base_objective, load_model

    monkeypatch.setattr(loader, "hub_reachable", lambda: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert base_objective("qwen2.5-7b-instruct") == "autoregressive"
    assert base_objective("llada-8b-instruct") == "masked-diffusion"
    with pytest.raises(BenchError, match="hub is unreachable.*or use --model tiny-ar"):
        load_model("llama-3.2-1b-instruct", "cpu")
