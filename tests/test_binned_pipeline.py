"""Binned LoRA through the harness: the sampler routes every step by its noise level (both
definitions, with and without a cache), likelihood scoring per Monte Carlo sample, lm-eval, and
a tiny grid whose records and report show K times LoRA's parameters."""

from __future__ import annotations

import pytest
import torch
from lm_eval.api.instance import Instance
from peft import get_peft_model_state_dict, set_peft_model_state_dict

from harness.ground.errors import BenchError
from harness.lmeval import BenchDLLM
from harness.models.loader import load_model
from harness.processes.masked.likelihood import LikelihoodConfig, estimate_loglikelihood
from harness.processes.masked.sampling import SamplerConfig, generate
from harness.run.executors.inprocess import InProcessExecutor
from harness.run.runner import run_grid
from methods import get_method
from tests.test_lmeval import LM_ARGS, _save_model
from tests.test_methods_binned import binned, lora_of_bin
from tests.test_runner import quick_spec, requests_for

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPTS = ["Q: 1+2=", "A much longer question: 20+22=", "Hi"]


def _bins_seen(dlm, adapter) -> list[torch.Tensor]:
    """The bin of every row, per forward (subscribed after the router, so it reads its result)."""
    seen = []
    dlm.channel.subscribe(lambda level: seen.append(adapter.router.assignment.clone()))
    return seen


def _prompts(dlm) -> list[list[int]]:
    return [dlm.tokenizer.encode_prompt(p) for p in PROMPTS]


def test_sampling_routes_every_step_by_the_response_level():
    dlm, adapter = binned()
    seen = _bins_seen(dlm, adapter)
    generate(dlm, _prompts(dlm), SamplerConfig(gen_length=8, steps=8, block_length=8))
    # one token per step: the masked fraction of the response is 8/8, 7/8, ..., 1/8
    assert [b.tolist() for b in seen] == [[k] * 3 for k in (3, 3, 3, 2, 2, 1, 1, 0)]


def test_sequence_levels_mix_bins_in_one_forward_and_rows_stay_independent():
    dlm, adapter = binned()
    prompts = _prompts(dlm)
    config = SamplerConfig(gen_length=8, steps=8, block_length=8, noise_level="sequence")
    seen = _bins_seen(dlm, adapter)
    batched = generate(dlm, prompts, config)
    lengths = torch.tensor([len(p) + 8 for p in prompts])
    for step, bins in enumerate(seen):
        masked = 8 - step
        assert torch.equal(bins, torch.clamp(masked * 4 // lengths, max=3))  # integer arithmetic
    assert any(len(set(b.tolist())) > 1 for b in seen)  # the mixed path really ran
    assert batched == [generate(dlm, [p], config)[0] for p in prompts]


def _identical_bins(dlm, adapter):
    """Every bin a copy of bin 0: binned LoRA must then be bin 0's LoRA everywhere."""
    state = get_peft_model_state_dict(adapter.peft_model, adapter_name="bin0")
    for k in range(1, adapter.config.bins):
        set_peft_model_state_dict(adapter.peft_model, state, adapter_name=f"bin{k}")
    return lora_of_bin(adapter, 0)


@pytest.mark.parametrize("cache", ["none", "prefix", "dual"])
def test_with_identical_bins_sampling_is_lora_with_every_cache(cache):
    dlm, adapter = binned()
    lora = _identical_bins(dlm, adapter)
    config = SamplerConfig(
        gen_length=8,
        steps=8,
        block_length=4,
        noise_level="sequence",  # rows of different bins in one forward
        cache=cache,
        cache_refresh="step-level-change:0.1",
    )
    prompts = _prompts(dlm)
    assert generate(dlm, prompts, config) == generate(lora, prompts, config)
    tok = dlm.tokenizer
    args = (tok.encode_prompt("Q: 1+2="), tok.encode(" 3 and more"), LikelihoodConfig(8, 8))
    assert estimate_loglikelihood(dlm, *args).loglik == pytest.approx(
        estimate_loglikelihood(lora, *args).loglik, abs=1e-5
    )


def test_likelihood_scores_each_sample_with_its_own_bin():
    dlm, adapter = binned()
    seen = _bins_seen(dlm, adapter)
    tok = dlm.tokenizer
    prefix, target = tok.encode_prompt("Q: 1+2="), tok.encode(" three, I think")
    got = estimate_loglikelihood(dlm, prefix, target, LikelihoodConfig(8, 8, seed=0))
    assert len(set(seen[0].tolist())) == 4  # stratified mask counts: every bin in one batch
    for k in range(4):  # different from scoring everything with any one bin
        single = estimate_loglikelihood(
            lora_of_bin(adapter, k), prefix, target, LikelihoodConfig(8, 8, seed=0)
        )
        assert abs(single.loglik - got.loglik) > 1e-4


def test_lm_eval_loads_a_binned_folder_and_refuses_another_base(tmp_path):
    model_dir = _save_model(tmp_path / "model")
    dlm = load_model(str(model_dir), "cpu")
    m = get_method("binned_lora")
    adapter = m.apply(dlm, m.config(rank=4))
    with torch.no_grad():
        for p in adapter.adapter_parameters():
            p.add_(torch.randn_like(p) * 0.3)
    adapter.save(tmp_path / "adapter")
    lm = BenchDLLM(model=str(model_dir), adapter=str(tmp_path / "adapter"), device="cpu", **LM_ARGS)
    context, continuation = "Question: is 2 even\nAnswer:", " yes"
    ((value, _),) = lm.loglikelihood(
        [Instance("loglikelihood", doc={}, arguments=(context, continuation), idx=0)]
    )
    ids = lm.dlm.tokenizer.encode
    config = LikelihoodConfig(LM_ARGS["mc_num"], LM_ARGS["mc_batch_size"], LM_ARGS["seed"])
    assert (
        value == estimate_loglikelihood(dlm.eval(), ids(context), ids(continuation), config).loglik
    )
    other = _save_model(tmp_path / "other", hidden=48)
    with pytest.raises(BenchError, match="does not fit base model"):
        BenchDLLM(model=str(other), adapter=str(tmp_path / "adapter"), device="cpu", **LM_ARGS)


def test_a_tiny_grid_cell_records_and_reports_k_times_lora_parameters(small_base, tmp_path):
    from reports.build import build_report

    spec = quick_spec(small_base, methods=["lora", "binned_lora"])
    summary = run_grid(requests_for(spec), tmp_path / "run", spec, InProcessExecutor("cpu"))
    assert summary.done == 2 and not summary.failed
    from results.store import load_records

    records = {r.config["method"]: r for r in load_records([tmp_path / "run"])}
    lora, bins = records["lora"], records["binned_lora"]
    assert bins.status == "done" and bins.scores
    assert bins.costs.trainable_params == 4 * lora.costs.trainable_params
    assert bins.costs.total_params == lora.costs.total_params  # the same base
    adapter = bins.adapter_path()
    assert sorted(p.name for p in adapter.glob("bin*")) == ["bin0", "bin1", "bin2", "bin3"]
    report = build_report([tmp_path / "run"], tmp_path / "report", make_plots=False)
    costs = (tmp_path / "report" / "costs.csv").read_text().splitlines()
    row = next(line for line in costs if line.startswith("binned_lora"))
    assert "(×4.00)" in row.split(",")[1]  # trainable params, 4x the LoRA baseline
    assert "binned_lora" in report.read_text()
