"""Every method on the released LLaDA and Dream code, through the harness's own functions.

Per family and method: train a few steps with ``train_adapter`` (and again with gradient
checkpointing: the same result), save, reload with bench's loader (and with stock peft for
lora/dora: the same logits), sample (a batch of prompts of different lengths equals its rows one
by one), score a likelihood and go through the lm-eval model (both its request types). Models: tests/released_models.py
(tiny random weights, substitute byte-level tokenizer, the released modeling code).
"""

from __future__ import annotations

import copy
import re

import pytest
import torch
from lm_eval.api.instance import Instance
from peft import PeftModel

from harness.config.cell import TrainConfig
from harness.lmeval import BenchDLLM
from harness.models.dlm import DiffusionLM
from harness.models.loader import load_model
from harness.processes.masked.likelihood import LikelihoodConfig, estimate_loglikelihood
from harness.processes.masked.sampling import SamplerConfig, generate
from harness.processes.training import train_adapter
from methods.registry import get_method, load_adapter

METHODS = ["lora", "dora", "static_core", "nara", "binned_lora"]
FIELDS = {
    "lora": {},
    "dora": {},
    "static_core": {},
    "nara": {"hidden_sizes": (8, 8)},
    "binned_lora": {"bins": 4},  # LEVELS fall in bins 0 and 3: a mixed batch
}
TRAIN = TrainConfig(
    steps=2, batch_size=2, grad_accum=1, lr=0.05, warmup_ratio=0.0, val_examples=0, max_length=64
)
PAIRS = [("Q: 1+2=", " 3"), ("Q: 20+22=", " 42"), ("Say hi.", " hi"), ("Q: 5-1=", " 4")]
PROMPTS = ["Q: 7+1=", "A longer question: 2+2=", "Hi"]  # different lengths: left padding
SAMPLER = SamplerConfig(gen_length=4, steps=4, block_length=4)
LEVELS = torch.tensor([0.2, 0.9])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train(folder, method: str, checkpointing: bool = False):
    dlm = load_model(str(folder), "cpu")
    tok = dlm.tokenizer
    data = [(tok.encode_prompt(p), tok.encode(a)) for p, a in PAIRS]
    torch.manual_seed(0)
    m = get_method(method)
    adapter = m.apply(dlm, m.config(rank=4, **FIELDS[method]))
    config = TrainConfig(**{**TRAIN.__dict__, "gradient_checkpointing": checkpointing})
    train_adapter(dlm, adapter, data, [], config, seed=0)
    return dlm, adapter


def _probe(dlm) -> torch.Tensor:
    tok = dlm.tokenizer
    rows = [tok.encode_prompt("Q: 1+2=") + [dlm.mask_id] * 3, tok.encode_prompt("ab cd") + [104]]
    width = min(len(r) for r in rows)
    return torch.tensor([r[:width] for r in rows])


@pytest.mark.parametrize("family", ["llada", "dream"])
@pytest.mark.parametrize("method", METHODS)
def test_method_on_released_code(family, method, released_folder, tmp_path):
    folder = released_folder(family)
    dlm, adapter = _train(folder, method)
    adapter.save(tmp_path / "adapter")
    x = _probe(dlm)
    with torch.no_grad():
        expected = dlm(x, LEVELS)
        base = load_model(str(folder), "cpu")
        assert not torch.allclose(base(x, LEVELS), expected, atol=1e-6), "training did nothing"
        plain = copy.deepcopy(base)
        load_adapter(base, tmp_path / "adapter")
        torch.testing.assert_close(base.eval()(x, LEVELS), expected, rtol=0, atol=1e-6)
        if method in ("lora", "dora"):  # stock peft over the (repaired) released model
            stock = PeftModel.from_pretrained(plain.backbone, str(tmp_path / "adapter")).eval()
            got = DiffusionLM(stock, plain.tokenizer, plain.info)(x, LEVELS)
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
        if method == "binned_lora":  # stock peft refuses it rather than load one bin as all
            with pytest.raises(KeyError, match="bench binned_lora adapter"):
                PeftModel.from_pretrained(plain.backbone, str(tmp_path / "adapter"))
    del base, plain

    # sampling: a batch of prompts of different lengths (left padding) equals its rows
    prompts = [dlm.tokenizer.encode_prompt(p) for p in PROMPTS]
    batched = generate(dlm, prompts, SAMPLER)
    assert batched == [generate(dlm, [p], SAMPLER)[0] for p in prompts]

    tok = dlm.tokenizer
    estimate = estimate_loglikelihood(
        dlm, tok.encode_prompt("Q: 1+2="), tok.encode(" 3"), LikelihoodConfig(8, 4, seed=0)
    )
    assert estimate.loglik < 0 and estimate.mc_num == 8

    lm = BenchDLLM(dlm=dlm, mc_num=4, mc_batch_size=4, gen_length=4, steps=4, block_length=4)
    requests = [
        Instance("loglikelihood", doc={}, arguments=("Q: 1+2=", " 3"), idx=0),
        Instance("loglikelihood", doc={}, arguments=("", "3"), idx=1),  # empty context: BOS
    ]
    assert all(value < 0 and not greedy for value, greedy in lm.loglikelihood(requests))
    until = {"until": ["\n\n"]}
    generations = lm.generate_until(
        [Instance("generate_until", doc={}, arguments=(p, until), idx=0) for p in PROMPTS[:2]]
    )
    assert len(generations) == 2 and all(isinstance(g, str) for g in generations)

    # gradient checkpointing through the training loop: the same adapter, recomputed layers
    checkpointed_dlm, checkpointed = _train(folder, method, checkpointing=True)
    pairs = zip(adapter.trainable_parameters(), checkpointed.trainable_parameters(), strict=True)
    for plain_param, checkpointed_param in pairs:
        torch.testing.assert_close(plain_param, checkpointed_param, rtol=1e-5, atol=1e-6)
    calls = []
    modules = checkpointed_dlm.backbone.named_modules()
    layer = next(m for n, m in modules if re.search(r"\.0\.(self_attn\.)?q_proj$", n))
    layer.register_forward_hook(lambda *_: calls.append(1))
    checkpointed_dlm.train()
    checkpointed_dlm(x, LEVELS).float().square().mean().backward()
    assert len(calls) == 2  # the layer really ran again during backward
