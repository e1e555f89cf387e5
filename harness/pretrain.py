"""Pretraining of the embedded tiny dLLM on the synthetic corpus, cached once per config.

The harness must run with no model hub, so it builds its own base: a small bidirectional
transformer trained with the masked-diffusion objective on the synthetic task families, for a
fixed number of steps (deterministic from the seed) that fits in a few CPU minutes. The base is
competent but not saturated, which is what lets fine-tuning methods be told apart on a CPU.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
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
from harness.diffusion import MaskingConfig, build_sft_batch, diffusion_loss, mask_response
from harness.models.dlm import DiffusionLM, ModelInfo
from harness.models.tiny import TinyDLLM, TinyDLLMConfig
from harness.models.tokenizer import CharTokenizer
from harness.sampler import SamplerConfig, generate

log = logging.getLogger(__name__)

# Bump when the synthetic corpus, the tiny architecture or the pretraining loop changes, so that a
# base cached by an older version of the code is never reused.
BASE_VERSION = 3


@dataclass(frozen=True)
class PretrainConfig:
    seed: int = 0
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    steps: int = 800
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 60
    weight_decay: float = 0.01
    examples_per_family: int = 8_000
    eval_examples: int = 200  # per family, sampled after training for the report

    def key(self) -> str:
        """Identifies the weights: everything but the size of the after-training evaluation."""
        return config_key(self, BASE_VERSION)


def tiny_base_dir(config: PretrainConfig = PretrainConfig()) -> Path:
    return cache_dir() / f"tiny-base-{config.key()}"


def ensure_tiny_base(config: PretrainConfig = PretrainConfig(), show_progress: bool = True) -> Path:
    """The cached tiny base for this config, pretraining it first (once) if it does not exist."""
    return ensure_cached(
        tiny_base_dir(config),
        lambda folder: pretrain(config, folder, show_progress=show_progress),
        "tiny base",
    )


def ensure_base_for_run(model: str) -> None:
    """Before a run starts its workers: the tiny base exists, pretrained (once, cached) in THIS
    process on every core. A worker of ``--devices cpu-cores`` runs one torch thread and would
    pretrain at about half the speed; a folder or a real model needs nothing here."""
    if model != "tiny":
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        ensure_tiny_base()
    finally:
        torch.set_num_threads(threads)


def pretrain(
    config: PretrainConfig,
    out_dir: Path,
    show_progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Train a fresh tiny dLLM and save it (model, tokenizer, report) into ``out_dir``."""
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    tokenizer = CharTokenizer()
    model_config = TinyDLLMConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        mask_token_id=tokenizer.mask_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = TinyDLLM(model_config)
    dlm = DiffusionLM(model, tokenizer, ModelInfo("tiny", "tiny", "pretraining"))
    pools = family_pools(tokenizer, config.examples_per_family, config.seed)
    masking = MaskingConfig()

    def batch_loss(pairs, generator: torch.Generator) -> torch.Tensor:
        ids, response = build_sft_batch(
            [p for p, _ in pairs], [a for _, a in pairs], tokenizer.eos_token_id
        )
        t = torch.rand(len(pairs), generator=generator)
        batch = mask_response(ids, response, t, tokenizer.mask_token_id, masking, generator)
        logits = dlm(batch.input_ids, batch.noise_level)
        return diffusion_loss(logits, batch, masking)[0]

    curve, train_time = run_pretraining(
        model, config, pools, batch_loss, "pretraining tiny dLLM", show_progress, on_step
    )
    accuracy = evaluate_base(dlm, config.eval_examples)
    report = pretraining_report(config, model, curve, train_time, accuracy)
    save_atomically(model, tokenizer, report, out_dir)
    log.info("tiny base: %s", {k: report[k] for k in ("train_time_s", "accuracy")})
    return report


def evaluate_base(dlm: DiffusionLM, n: int) -> dict[str, float]:
    """Exact-match accuracy of the answer on each family's validation split (greedy sampling)."""
    config = SamplerConfig(gen_length=16, steps=16, block_length=4)  # the tiny eval default
    return exact_match_accuracy(dlm.tokenizer, n, lambda prompts: generate(dlm, prompts, config))
