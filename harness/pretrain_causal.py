"""Pretraining of the tiny autoregressive base (``--model tiny-ar``), cached like the tiny dLLM.

The same synthetic data mix, tokenizer, sizes and budget style as :mod:`harness.pretrain`, with
next-token loss on the answer instead of the masked-diffusion loss. The architecture is a small
transformers ``LlamaForCausalLM`` (RMSNorm, RoPE, SwiGLU): every causal-LM path of the harness
(LoRA through peft, L2D's hooks into Llama decoder layers, the KV cache) is then the one real
Llama checkpoints take. Fewer updates than the dLLM: a causal LM learns the answers from far fewer
examples (every answer token is a target at every step) and the budget stays under 4 CPU minutes.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.base_pretraining import (
    cache_dir,
    config_key,
    ensure_cached,
    exact_match_accuracy,
    family_pools,
    pretraining_report,
    run_pretraining,
    save_atomically,
)
from harness.causal.objective import causal_batch, next_token_loss
from harness.models.causal import CausalLM
from harness.models.dlm import ModelInfo
from harness.models.tokenizer import CharTokenizer

log = logging.getLogger(__name__)

AR_BASE_VERSION = 1  # bump when the corpus, the architecture or this loop changes


@dataclass(frozen=True)
class CausalPretrainConfig:
    seed: int = 0
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    steps: int = 600
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 40
    weight_decay: float = 0.01
    examples_per_family: int = 8_000
    eval_examples: int = 200

    def key(self) -> str:
        return config_key(self, AR_BASE_VERSION)


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


def build_tiny_ar(config: CausalPretrainConfig, tokenizer: CharTokenizer):
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


def pretrain_causal(config: CausalPretrainConfig, out_dir: Path, show_progress: bool = True):
    """Train a fresh tiny causal LM and save it (model, tokenizer, report) into ``out_dir``."""
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    tokenizer = CharTokenizer()
    model = build_tiny_ar(config, tokenizer)
    lm = CausalLM(model, tokenizer, ModelInfo("tiny-ar", "tiny-ar", "pretraining"))
    pools = family_pools(tokenizer, config.examples_per_family, config.seed)

    def batch_loss(pairs, _generator: torch.Generator) -> torch.Tensor:
        ids, scored = causal_batch(pairs, tokenizer, None)
        return next_token_loss(lm(ids), ids, scored, "answer_length")[0]

    curve, train_time = run_pretraining(
        model, config, pools, batch_loss, "pretraining tiny causal LM", show_progress
    )
    accuracy = evaluate_causal_base(lm, config.eval_examples)
    report = pretraining_report(config, model, curve, train_time, accuracy)
    save_atomically(model, tokenizer, report, out_dir)
    log.info("tiny causal base: %s", {k: report[k] for k in ("train_time_s", "accuracy")})
    return report


def evaluate_causal_base(lm: CausalLM, n: int) -> dict[str, float]:
    """Exact-match accuracy of greedy answers on each family's validation split."""
    from harness.causal.decode import greedy_generate

    return exact_match_accuracy(lm.tokenizer, n, lambda prompts: greedy_generate(lm, prompts, 16))
