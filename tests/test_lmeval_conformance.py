"""bench's Monte Carlo log-likelihood against LLaDA's lm-eval model (``get_loglikelihood`` of
ML-GSAI/LLaDA ``eval_llada.py``, loaded from ../shared at test time): with the same seed both
draw the same masks, so the per-request values are equal (to float rounding), with and without
classifier-free guidance, over several Monte Carlo batches. Model: a tiny random-weight LLaDA
(tests/released_models.py, peaked by tests/reference_code.py)."""

from __future__ import annotations

import pytest
import torch
from lm_eval.api.model import LM

from harness.ground.errors import BenchError
from harness.models.loader import load_model
from harness.processes.masked.likelihood import (
    LikelihoodConfig,
    estimate_loglikelihood,
    llada_masks,
)
from harness.processes.masked.sampling import SamplerConfig, generate
from tests.reference_code import peaked, reference_module
from tests.released_models import require_fixtures

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def llada(llada_folder):
    require_fixtures()
    return peaked(load_model(str(llada_folder), "cpu"), head=30.0, blocks=3.0)


def _their_harness(llada, mc_num: int, batch: int, cfg: float):
    """LLaDA's lm-eval model around the loaded model, without its __init__ (which loads the
    checkpoint itself in bf16 on a GPU): the attributes ``get_loglikelihood`` reads."""
    module = reference_module("samplers/llada/eval_llada.py")
    harness = object.__new__(module.LLaDAEvalHarness)
    LM.__init__(harness)
    # lm-eval's LM.device is a read-only property over _device
    harness.model, harness.mask_id, harness._device = llada.backbone, llada.mask_id, llada.device
    harness.mc_num, harness.batch_size, harness.cfg, harness.sampling_eps = mc_num, batch, cfg, 0.0
    return harness


CASES = [  # (prefix length, target length, mc_num, batch, cfg)
    (6, 5, 8, 4, 0.0),
    (9, 1, 4, 4, 0.0),
    (4, 3, 8, 8, 0.0),  # more samples in a batch than target tokens
    (6, 7, 12, 4, 1.5),
]


@pytest.mark.parametrize("p_len,t_len,mc_num,batch,cfg", CASES)
@pytest.mark.parametrize("seed", [0, 7])
def test_loglikelihood_equals_llada_eval_with_the_same_masks(
    llada, p_len, t_len, mc_num, batch, cfg, seed
):
    ids = torch.randint(40, 120, (p_len + t_len,), generator=torch.Generator().manual_seed(seed))
    prefix, target = ids[:p_len], ids[p_len:]
    torch.manual_seed(seed)
    theirs = _their_harness(llada, mc_num, batch, cfg).get_loglikelihood(prefix, target)
    config = LikelihoodConfig(mc_num, batch, seed, masks="llada", cfg_scale=cfg)
    ours = estimate_loglikelihood(llada, prefix.tolist(), target.tolist(), config).loglik
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-5)


def test_the_masks_are_llada_forward_process_draws(llada):
    """The masks themselves, drawn from the same seed by LLaDA's ``_forward_process``."""
    harness = _their_harness(llada, 4, 4, 0.0)
    batch = torch.zeros((4, 10), dtype=torch.long)
    prompt_index = torch.arange(10) < 3
    torch.manual_seed(11)
    noisy, p_mask = harness._forward_process(batch, prompt_index)
    masked, counts = llada_masks(7, 4, torch.Generator().manual_seed(11))
    assert torch.equal(noisy[:, 3:] == llada.mask_id, masked)
    assert torch.equal(p_mask[:, 0], counts / 7)


def test_the_stratified_draw_is_another_estimate_and_bad_names_fail(llada):
    prefix, target = [126080, 60, 61, 62], [70, 71, 72]
    a = estimate_loglikelihood(llada, prefix, target, LikelihoodConfig(8, 4, masks="llada"))
    b = estimate_loglikelihood(llada, prefix, target, LikelihoodConfig(8, 4, masks="stratified"))
    assert a.loglik != b.loglik
    with pytest.raises(BenchError, match="mc_masks 'bench' is not one of"):
        LikelihoodConfig(masks="bench")


def test_generate_until_equals_llada_eval_when_nothing_follows_the_first_eos(llada):
    """The answers of ``generate_until`` with the same sampler settings. The questions start
    with BOS in text, so both sides encode the same ids (bench adds BOS itself, LLaDA's lm-eval
    model relies on the tokenizer). By design bench's answer ends at its first EOS, LLaDA's keeps
    the text after it; they are equal where only EOS follows."""
    from types import SimpleNamespace

    from harness.lmeval.model import BenchDLLM

    module = reference_module("samplers/llada/eval_llada.py")
    theirs_lm = _their_harness(llada, 4, 4, 0.0)
    theirs_lm.tokenizer = llada.tokenizer.tok
    theirs_lm.steps, theirs_lm.gen_length, theirs_lm.block_length = 16, 16, 4
    theirs_lm.remasking = "low_confidence"
    theirs_lm.accelerator = SimpleNamespace(wait_for_everyone=lambda: None)
    bos = "<|startoftext|>"
    first = llada.tokenizer.decode(
        generate(llada, [llada.tokenizer.encode_prompt("Q: 7+1=")], SamplerConfig(16, 16, 4))[0]
    )
    stops = [["Question:"], [first[len(first) // 2 : len(first) // 2 + 4]]]
    requests = [
        SimpleNamespace(args=(bos + q, {"until": until, "max_gen_toks": 16}), task_name="t")
        for q in ("Q: 7+1=", "A longer question: 2+2=")
        for until in stops
    ]
    theirs = module.LLaDAEvalHarness.generate_until(theirs_lm, requests)
    ours = BenchDLLM(dlm=llada, gen_length=16, steps=16, block_length=4).generate_until(requests)
    assert ours == theirs
    assert ours[1] != ours[0]  # the stop string cut the answer
