"""Tiny random-weight causal LMs for the L2D and autoregressive-base tests, built in milliseconds:
the tiny-ar architecture (a transformers Llama, character tokenizer), a Llama with grouped-query
attention and a Qwen2 (biased q/k/v)."""

from __future__ import annotations

import torch

from harness.models.causal import CausalLM
from harness.models.dlm import ModelInfo
from harness.models.tokenizer import CharTokenizer


def _config(kind: str, vocab: int, hidden: int):
    from transformers import LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=2 * hidden,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    if kind == "tiny-ar":
        return LlamaConfig(num_key_value_heads=4, rms_norm_eps=1e-5, **common)
    if kind == "llama":
        return LlamaConfig(num_key_value_heads=2, **common)
    if kind == "qwen2":
        return Qwen2Config(num_key_value_heads=2, **common)
    raise ValueError(kind)


def make_causal_lm(kind: str = "tiny-ar", seed: int = 0, hidden: int = 32) -> CausalLM:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    tok = CharTokenizer()
    model = AutoModelForCausalLM.from_config(_config(kind, tok.vocab_size, hidden)).eval()
    return CausalLM(model, tok, ModelInfo(kind, kind, "test"))


def save_tiny_ar(folder, seed: int = 0):
    """A tiny-ar folder (random weights) the loader recognises, for cell and grid tests."""
    lm = make_causal_lm("tiny-ar", seed)
    lm.backbone.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


def perturb(parameters, seed: int = 1, scale: float = 0.1) -> None:
    """Move every given parameter off its initial value (zero-initialised heads included)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in parameters:
            p.add_(scale * torch.randn(p.shape, generator=generator))
