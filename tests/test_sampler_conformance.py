"""bench's block sampler against the authors' code, token for token, on a tiny random-weight
LLaDA (tests/released_models.py; its output head peaked, EOS and EOT made frequent candidates):

- LLaDA's ``generate`` (ML-GSAI/LLaDA b7e6c35): every option, both EOS options included, on a
  left-padded batch;
- Fast-dLLM's ``generate`` with a threshold, ``generate_with_prefix_cache`` and
  ``generate_with_dual_cache`` (NVlabs/Fast-dLLM 24cc59e; batch 1, as its code takes), the
  reference running on Fast-dLLM's modified modeling file, bench on the released one;
- confidences in a wide type: a bf16 model commits what the float64 reference commits.

Reference code: tests/reference_code.py (loaded from ../shared at test time)."""

from __future__ import annotations

import pytest
import torch

from harness.models.loader import load_model
from harness.processes.masked.sampling import SamplerConfig, generate, left_pad
from tests.reference_code import fastdllm_llada, peaked, reference_module
from tests.released_models import LLADA_SPECIALS, require_fixtures

pytestmark = pytest.mark.usefixtures("one_torch_thread")
EOS, EOT = LLADA_SPECIALS["<|endoftext|>"], LLADA_SPECIALS["<|eot_id|>"]
PROMPTS = ["Q: 7+1=", "A longer question: 2+2="]  # different lengths: left padding


def _with_frequent_ends(dlm):
    """EOS and EOT take the output rows of the two tokens the model predicts most often (a bit
    larger), so both are often the best candidate and the EOS options change the decode."""
    head = dlm.backbone.get_output_embeddings().weight
    ids, _ = left_pad([dlm.tokenizer.encode_prompt(p) for p in PROMPTS], 0)
    x = torch.cat([ids, torch.full((2, 16), dlm.mask_id)], 1)
    with torch.no_grad():
        common = dlm(x, torch.ones(2))[:, -16:].argmax(-1).flatten().bincount().topk(2).indices
        head[EOS] = head[common[0]] * 1.3
        head[EOT] = head[common[1]] * 1.3
    return dlm


@pytest.fixture(scope="module")
def llada(llada_folder):
    require_fixtures()
    return _with_frequent_ends(peaked(load_model(str(llada_folder), "cpu")))


def _cut(row: list[int]) -> list[int]:
    return row[: row.index(EOS)] if EOS in row else row


def _compare(reference_rows: torch.Tensor, prompt_len: int, ours: list[list[int]]) -> None:
    theirs = [_cut(r) for r in reference_rows[:, prompt_len:].tolist()]
    assert ours == theirs


LLADA_CASES = [
    dict(steps=16, gen_length=16, block_length=4),
    dict(steps=8, gen_length=16, block_length=8),
    dict(steps=16, gen_length=16, block_length=16, logits_eos_inf=True),
    dict(steps=16, gen_length=16, block_length=4, confidence_eos_eot_inf=True),
    dict(steps=8, gen_length=16, block_length=4, logits_eos_inf=True, confidence_eos_eot_inf=True),
    dict(steps=16, gen_length=16, block_length=4, cfg_scale=1.5, confidence_eos_eot_inf=True),
    dict(steps=16, gen_length=16, block_length=4, remasking="random"),
    dict(steps=16, gen_length=16, block_length=8, temperature=0.7, confidence_eos_eot_inf=True),
    dict(steps=8, gen_length=16, block_length=4, temperature=1.0, remasking="random"),
]


@pytest.mark.parametrize(
    "case", LLADA_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items())
)
def test_llada_generate_every_option(llada, case):
    ref = reference_module("samplers/llada/generate.py")
    prompts = [llada.tokenizer.encode_prompt(p) for p in PROMPTS]
    ids, attention = left_pad(prompts, llada.tokenizer.pad_token_id)
    torch.manual_seed(3)
    theirs = ref.generate(llada.backbone, ids, attention, mask_id=llada.mask_id, **case)
    # rows retired at EOS would shift a random stream: keep every row to the end when sampling
    random = case.get("temperature", 0) > 0 or case.get("remasking") == "random"
    config = SamplerConfig(**case, stop_at_eos=not random)
    ours = generate(llada, prompts, config, generator=torch.Generator().manual_seed(3))
    _compare(theirs, ids.shape[1], ours)


def test_the_eos_options_change_the_decode(llada):
    """They matter on this model (else the cases above could not tell them apart)."""
    prompts = [llada.tokenizer.encode_prompt(p) for p in PROMPTS]
    plain = generate(llada, prompts, SamplerConfig(16, 16, 4))
    for option in ("logits_eos_inf", "confidence_eos_eot_inf"):
        assert generate(llada, prompts, SamplerConfig(16, 16, 4, **{option: True})) != plain


@pytest.fixture(scope="module")
def fastdllm_model(llada_folder, llada):
    """Fast-dLLM's modified LLaDA with the same (peaked) weights as ``llada``."""
    return fastdllm_llada(llada_folder, llada.backbone.state_dict())


FAST_CASES = [  # (reference function, bench cache, threshold, steps)
    ("generate", "none", 0.9, 2),  # Fast-dLLM's published arguments: steps = gen / block
    ("generate", "none", 0.5, 16),
    ("generate_with_prefix_cache", "prefix", 0.9, 2),
    ("generate_with_dual_cache", "dual", 0.9, 2),
    ("generate_with_dual_cache", "dual", 0.7, 16),
    ("generate_with_prefix_cache", "prefix", None, 16),
    ("generate_with_dual_cache", "dual", None, 8),
]


@pytest.mark.parametrize("function,cache,threshold,steps", FAST_CASES)
@pytest.mark.parametrize("prompt", PROMPTS)
def test_fastdllm_threshold_and_caches(
    llada, fastdllm_model, function, cache, threshold, steps, prompt
):
    ref = reference_module("samplers/fast-dllm-llada/generate.py")
    ids = torch.tensor([llada.tokenizer.encode_prompt(prompt)])
    theirs, _ = getattr(ref, function)(
        fastdllm_model,
        ids,
        steps=steps,
        gen_length=16,
        block_length=8,
        mask_id=llada.mask_id,
        threshold=threshold,
    )
    parallel = "none" if threshold is None else f"fastdllm-threshold:{threshold}"
    config = SamplerConfig(16, steps, 8, cache=cache, parallel=parallel)
    _compare(theirs, ids.shape[1], generate(llada, [ids[0].tolist()], config))


def test_bench_threshold_with_fastdllm_arguments_says_it_decodes_each_block_at_once():
    config = SamplerConfig(16, 2, 8, parallel="threshold:0.9")
    assert "one forward" in config.notes[0] and "fastdllm-threshold:0.9" in config.notes[0]
    assert "steps ignored" in SamplerConfig(16, 2, 8, parallel="fastdllm-threshold:0.9").notes[0]


class _Float32Logits(torch.nn.Module):
    """A bf16 model whose logits the reference reads in float32 (LLaDA's code would otherwise
    take its softmax in bf16, where two different probabilities can round to one)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @property
    def device(self):
        return self.model.device

    def forward(self, *args, **kwargs):
        out = self.model(*args, **kwargs)
        out.logits = out.logits.float()
        return out


def test_a_bf16_model_commits_what_the_wide_references_commit(llada, fastdllm_model):
    """bf16 logits, confidences in float32 (LLaDA's rule) and float64 (Fast-dLLM's): the tokens
    are the references' with their confidences taken in float32 and float64 respectively."""
    llada.backbone.to(torch.bfloat16)
    fastdllm_model.to(torch.bfloat16)
    try:
        prompts = [llada.tokenizer.encode_prompt(p) for p in PROMPTS]
        ids, attention = left_pad(prompts, llada.tokenizer.pad_token_id)
        ref = reference_module("samplers/llada/generate.py")
        theirs = ref.generate(
            _Float32Logits(llada.backbone),
            ids,
            attention,
            steps=16,
            gen_length=16,
            block_length=4,
            mask_id=llada.mask_id,
            confidence_eos_eot_inf=True,
        )
        ours = generate(llada, prompts, SamplerConfig(16, 16, 4, confidence_eos_eot_inf=True))
        _compare(theirs, ids.shape[1], ours)
        fast = reference_module("samplers/fast-dllm-llada/generate.py")
        one = torch.tensor([prompts[1]])
        theirs, _ = fast.generate_with_dual_cache(
            fastdllm_model,
            one,
            steps=2,
            gen_length=16,
            block_length=8,
            mask_id=llada.mask_id,
            threshold=0.9,
        )
        config = SamplerConfig(16, 2, 8, cache="dual", parallel="fastdllm-threshold:0.9")
        _compare(theirs, one.shape[1], generate(llada, [prompts[1]], config))
    finally:
        llada.backbone.to(torch.float32)
        fastdllm_model.to(torch.float32)
