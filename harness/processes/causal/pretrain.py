"""Pretraining of the tiny autoregressive base (``--model tiny-ar``), cached like the tiny dLLM.

The same synthetic data mix, tokenizer, sizes and budget style as :mod:`harness.processes.masked.pretrain`, with
next-token loss on the answer instead of the masked-diffusion loss. The architecture is a small
transformers ``LlamaForCausalLM`` (RMSNorm, RoPE, SwiGLU): every causal-LM path of the harness
(LoRA through peft, L2D's hooks into Llama decoder layers, the KV cache) is then the one real
Llama checkpoints take. Fewer updates than the dLLM: a causal LM learns the answers from far fewer
examples (every answer token is a target at every step) and the budget stays under 4 CPU minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from harness.models.causal import CausalLM
from harness.models.dlm import ModelInfo
from harness.processes.causal.objective import causal_batch, next_token_loss
from harness.processes.pretraining import (
    BaseRecipe,
    TinyBaseConfig,
    cache_dir,
    ensure_cached,
    exact_match_accuracy,
    pretrain_base,
)

AR_BASE_VERSION = 1  # bump when the corpus, the architecture or this loop changes


@dataclass(frozen=True)
class CausalPretrainConfig(TinyBaseConfig):
    """The tiny causal base's pretraining: the tiny dLLM's sizes and data, fewer updates."""

    version: ClassVar[int] = AR_BASE_VERSION

    steps: int = 600
    warmup_steps: int = 40


def tiny_ar_base_dir(config: CausalPretrainConfig = CausalPretrainConfig()) -> Path:
    return cache_dir() / f"tiny-ar-base-{config.key()}"


def ensure_tiny_ar_base(
    config: CausalPretrainConfig = CausalPretrainConfig(), show_progress: bool = True
) -> Path:
    """The cached tiny causal base, pretrained first (once, under a file lock) if missing."""
    return ensure_cached(
        tiny_ar_base_dir(config),
        lambda folder: pretrain_causal(config, folder, show_progress=show_progress),
        "tiny causal base",
    )


def build_tiny_ar(config: TinyBaseConfig, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    model_config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(model_config)


def build_tiny_causal_lm(config: TinyBaseConfig, tokenizer) -> CausalLM:
    model = build_tiny_ar(config, tokenizer)
    return CausalLM(model, tokenizer, ModelInfo("tiny-ar", "tiny-ar", "pretraining"))


def answer_next_token_loss(
    lm: CausalLM, pairs, _generator: torch.Generator, _pad_to: int | None = None, _config=None
) -> torch.Tensor:
    """Next-token cross-entropy on the answer and its EOS, averaged per example (a causal model
    stops at its first EOS, so it needs no EOS tail: its config never asks for one)."""
    ids, scored = causal_batch(pairs, lm.tokenizer, None)
    return next_token_loss(lm(ids), ids, scored, "answer_length")[0]


def evaluate_causal_base(lm: CausalLM, n: int) -> dict[str, float]:
    """Exact-match accuracy of greedy answers on each family's validation split."""
    from harness.processes.causal.decode import greedy_generate

    return exact_match_accuracy(lm.tokenizer, n, lambda prompts: greedy_generate(lm, prompts, 16))


TINY_CAUSAL_LM = BaseRecipe(
    "tiny causal LM",
    "tiny causal base",
    build_tiny_causal_lm,
    answer_next_token_loss,
    evaluate_causal_base,
)


def pretrain_causal(config: CausalPretrainConfig, out_dir: Path, show_progress: bool = True):
    """Train a fresh tiny causal LM and save it (model, tokenizer, report) into ``out_dir``."""
    return pretrain_base(TINY_CAUSAL_LM, config, out_dir, show_progress)
