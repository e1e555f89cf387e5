"""bench's Dream sampler (``remasking=origin|maskgit_plus|topk_margin|entropy``) against Dream's
own ``diffusion_generate`` (Dream's released generation_utils.py, from ../shared/fixtures/
dllm-code/dream), token for token, on a tiny random-weight Dream folder
(tests/released_models.py; peaked by tests/reference_code.py) with a left-padded batch. Both sides
are seeded alike, so the random draws (origin's coin flips, categorical samples at temperature
> 0, the multinomial of ``alg_temp``) are the same."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from harness.ground.errors import BenchError
from harness.models.loader import load_model
from harness.processes.masked.sampling import SamplerConfig, generate, left_pad
from tests.reference_code import peaked
from tests.released_models import DREAM_SPECIALS, require_fixtures

pytestmark = pytest.mark.usefixtures("one_torch_thread")
EOS, MASK = DREAM_SPECIALS["<|endoftext|>"], DREAM_SPECIALS["<|mask|>"]
PROMPTS = ["Q: 7+1=", "A longer question: 2+2="]
CASES = [
    dict(remasking="origin", steps=8),
    dict(remasking="maskgit_plus", steps=8),
    dict(remasking="topk_margin", steps=16),
    dict(remasking="entropy", steps=8),
    dict(remasking="entropy", steps=5),  # counts from 1 - s / t that do not divide evenly
    dict(remasking="maskgit_plus", steps=8, alg_temp=0.5),
    dict(remasking="entropy", steps=8, temperature=0.8),
    dict(remasking="origin", steps=8, temperature=0.8),
]


@pytest.fixture(scope="module")
def dream(released_folder):
    require_fixtures()
    return peaked(load_model(str(released_folder("dream")), "cpu"))


def _reference(dream, ids, attention, case):
    """Dream's own diffusion_generate, given its generation config explicitly (building one from
    the model config fails under transformers 5)."""
    package = type(dream.backbone).__module__.rsplit(".", 1)[0]
    config_class = sys.modules[f"{package}.generation_utils"].DreamGenerationConfig
    config = config_class(
        max_new_tokens=16,
        steps=case["steps"],
        alg=case["remasking"],
        alg_temp=case.get("alg_temp", 0.0),
        temperature=case.get("temperature", 0.0),
        mask_token_id=MASK,
        pad_token_id=EOS,
        bos_token_id=EOS,
        eos_token_id=EOS,
    )
    return dream.backbone.diffusion_generate(
        ids, generation_config=config, attention_mask=attention
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_dream_algorithms_equal_diffusion_generate(dream, case):
    prompts = [dream.tokenizer.encode_prompt(p) for p in PROMPTS]
    ids, attention = left_pad(prompts, dream.tokenizer.pad_token_id)
    torch.manual_seed(5)
    theirs = _reference(dream, ids, attention, case)[:, ids.shape[1] :].tolist()
    theirs = [r[: r.index(EOS)] if EOS in r else r for r in theirs]
    config = SamplerConfig(gen_length=16, block_length=16, **case)
    ours = generate(dream, prompts, config, generator=torch.Generator().manual_seed(5))
    assert ours == theirs
    assert all(len(r) == 16 for r in theirs)  # nothing hidden behind an early EOS


def test_the_confidence_of_each_algorithm_on_an_exact_case():
    """maskgit_plus: the candidate's probability; topk_margin: top-1 minus top-2; entropy: the
    negative entropy (with Dream's 1e-10 inside the log)."""
    from harness.processes.masked.sampling.dream import _confidence

    probs = torch.tensor([[0.5, 0.3, 0.2]])
    x0 = torch.tensor([0])
    assert _confidence(probs, x0, "maskgit_plus").item() == pytest.approx(0.5)
    assert _confidence(probs, x0, "topk_margin").item() == pytest.approx(0.2)
    entropy = sum(p * math.log(p + 1e-10) for p in (0.5, 0.3, 0.2))
    assert _confidence(probs, x0, "entropy").item() == pytest.approx(entropy)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(block_length=8), "has no blocks"),
        (dict(cache="dual"), "does not take cache=dual"),
        (dict(confidence_eos_eot_inf=True), "does not take confidence_eos_eot_inf"),
        (dict(alg_temp=-1.0), "alg_temp must be >= 0"),
    ],
)
def test_bad_dream_settings_fail_with_one_line(kwargs, message):
    with pytest.raises(BenchError, match=message):
        SamplerConfig(
            **{"gen_length": 16, "steps": 8, "block_length": 16, "remasking": "entropy", **kwargs}
        )


def test_dream_settings_on_llada_remasking_fail():
    with pytest.raises(BenchError, match="belong to Dream"):
        SamplerConfig(16, 16, 16, alg_temp=0.5)
