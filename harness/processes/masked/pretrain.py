"""Pretraining of the embedded tiny dLLM on the synthetic corpus, cached once per config.

The harness must run with no model hub, so it builds its own base: a small bidirectional
transformer trained with the masked-diffusion objective on the synthetic task families, for a
fixed number of steps (deterministic from the seed) that fits in a few CPU minutes. The base is
competent but not saturated, which is what lets fine-tuning methods be told apart on a CPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from harness.ground.errors import BenchError
from harness.models.dlm import DiffusionLM, ModelInfo
from harness.models.shipped import install, shipped_base
from harness.models.tiny import TinyDLLM, TinyDLLMConfig
from harness.processes.masked.forward import (
    MaskingConfig,
    build_sft_batch,
    diffusion_loss,
    mask_response,
)
from harness.processes.masked.sampling import SamplerConfig, generate
from harness.processes.pretraining import (
    BaseRecipe,
    TinyBaseConfig,
    cache_dir,
    config_key,
    ensure_cached,
    exact_match_accuracy,
    pretrain_base,
)

# Bump when the synthetic corpus, the tiny architecture or the pretraining loop changes, so that a
# base cached by an older version of the code is never reused.
BASE_VERSION = 3


@dataclass(frozen=True)
class PretrainConfig(TinyBaseConfig):
    """The tiny dLLM's pretraining: the defaults of :class:`TinyBaseConfig`, and the EOS tail.

    The synthetic answers are a few tokens long, so a base trained only on batches padded to
    their longest row never sees a long run of masked positions after its answer, and a sampler
    asked for 256 tokens finds it lost (it writes a default answer whatever the prompt). So, as
    in LLaDA's SFT, the base also learns from EOS-tail batches: responses padded with EOS to a
    long length (cycling through ``eos_tail_lengths``), the EOS masked and scored like any answer
    token, about ``eos_tail_tokens`` tokens a batch (rows = tokens // (length + 64), at least 4).

    ``eos_tail_mode``: "add" (the default) keeps every plain batch, drawn exactly as for a base
    without a tail, and adds a tail batch's loss, times ``eos_tail_weight``, to every
    ``eos_tail_every``-th update (its rows and masks from a second generator); "replace" makes
    that update a tail batch instead of a plain one. Replacing cost the demo's fine-tuning most
    of its headroom on synth_math_unseen; adding at weight 0.5 keeps the base answering at gen
    256 (block 32): the shipped build loses nothing measurable against gen 16 (block 4) on the
    families it was pretrained on (-1.4, -0.5, +3.9 points), while on the unseen ones, where it
    answers with a default guess, the length changes the guess (up to 12 points;
    docs/measurements.md, length or block).

    ``eos_tail_normalize``: "response" divides each example's loss by its whole padded response
    (LLaDA's answer length counts the padding); "answer" by its answer and one EOS, so that the
    few answer tokens keep the weight they have in a plain batch next to hundreds of EOS. Every
    tail field is in the key when the tail is on: a base trained with another tail is another
    base. ``eos_tail_every=0`` is the short-answer base of earlier versions (:data:`SHORT_ANSWER_BASE`,
    ``bench pretrain --eos-tail-every 0``), with its key and weights.
    """

    version: ClassVar[int] = BASE_VERSION

    eos_tail_every: int = 4  # 0: no EOS-tail batches
    eos_tail_lengths: tuple[int, ...] = (64, 128, 256, 512)
    eos_tail_tokens: int = 2048
    eos_tail_normalize: str = "answer"  # answer | response
    eos_tail_mode: str = "add"  # add | replace
    eos_tail_weight: float = 0.5  # the tail batch's loss is multiplied by this

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.eos_tail_normalize not in ("answer", "response"):
            raise BenchError(
                f"eos_tail_normalize {self.eos_tail_normalize!r} is not one of: answer, response"
            )
        if self.eos_tail_mode not in ("add", "replace"):
            raise BenchError(f"eos_tail_mode {self.eos_tail_mode!r} is not one of: add, replace")
        if self.eos_tail_every < 0 or not self.eos_tail_lengths or self.eos_tail_tokens <= 0:
            raise BenchError("eos_tail_every >= 0, eos_tail_lengths and eos_tail_tokens > 0")

    def key(self) -> str:
        """Without a tail, the key of the same base before the tail existed."""
        if self.eos_tail_every == 0:
            omit = ("eos_tail_every", "eos_tail_lengths", "eos_tail_tokens", "eos_tail_normalize")
            return config_key(self, self.version, omit=(*omit, "eos_tail_mode", "eos_tail_weight"))
        # "replace" was the only mode when the first tail bases were cached: keep their keys
        omit = ("eos_tail_mode",) if self.eos_tail_mode == "replace" else ()
        omit += ("eos_tail_weight",) if self.eos_tail_weight == 1.0 else ()
        return config_key(self, self.version, omit=omit)

    def batch_shape(self, step: int) -> tuple[int, int | None]:
        if self.eos_tail_mode == "add" or not self._is_tail_step(step):
            return self.batch_size, None
        return self._tail_shape(step)

    def extra_batch_shape(self, step: int) -> tuple[int, int] | None:
        if self.eos_tail_mode != "add" or not self._is_tail_step(step):
            return None
        return self._tail_shape(step)

    def _is_tail_step(self, step: int) -> bool:
        every = self.eos_tail_every
        return every > 0 and step % every == every - 1

    def _tail_shape(self, step: int) -> tuple[int, int]:
        length = self.eos_tail_lengths[(step // self.eos_tail_every) % len(self.eos_tail_lengths)]
        return max(4, self.eos_tail_tokens // (length + 64)), length


# The default base writes long answers (gen length 256 and beyond); the base of earlier versions,
# without the EOS tail, only short ones.
SHORT_ANSWER_BASE = PretrainConfig(eos_tail_every=0)


def tiny_base_dir(config: PretrainConfig = PretrainConfig()) -> Path:
    return cache_dir() / f"tiny-base-{config.key()}"


def ensure_tiny_base(
    config: PretrainConfig = PretrainConfig(),
    show_progress: bool = True,
    from_scratch: bool = False,
) -> Path:
    """The cached tiny base for this config, built first (once) if it does not exist: installed
    from the copy that ships with bench when one does under this config's key (the default's,
    harness/models/shipped.py), else pretrained; ``from_scratch`` pretrains it either way."""
    folder = tiny_base_dir(config)
    shipped = None if from_scratch else shipped_base(folder.name)
    if shipped is not None:
        return ensure_cached(
            folder, lambda to: install(shipped, to), "tiny base", "installing the copy bench ships"
        )
    return ensure_cached(
        folder, lambda to: pretrain(config, to, show_progress=show_progress), "tiny base"
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


def build_tiny_dlm(config: TinyBaseConfig, tokenizer) -> DiffusionLM:
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
    return DiffusionLM(TinyDLLM(model_config), tokenizer, ModelInfo("tiny", "tiny", "pretraining"))


def masked_diffusion_loss(
    dlm: DiffusionLM,
    pairs,
    generator: torch.Generator,
    pad_to: int | None = None,
    config: PretrainConfig = PretrainConfig(),
) -> torch.Tensor:
    """One noise level per example, masks over the answer and its EOS padding (the default
    masking); ``pad_to``: the response length of an EOS-tail batch, normalised as
    ``config.eos_tail_normalize`` says."""
    tok, masking = dlm.tokenizer, MaskingConfig()
    prompts, answers = [p for p, _ in pairs], [a for _, a in pairs]
    ids, response = build_sft_batch(prompts, answers, tok.eos_token_id, response_length=pad_to)
    t = torch.rand(len(pairs), generator=generator)
    batch = mask_response(ids, response, t, tok.mask_token_id, masking, generator)
    loss, per_example = diffusion_loss(dlm(batch.input_ids, batch.noise_level), batch, masking)
    if pad_to is None:
        return loss
    if config.eos_tail_normalize == "answer":
        answer_len = torch.tensor([len(a) + 1 for a in answers], dtype=per_example.dtype)
        loss = (per_example * batch.response_len / answer_len).mean()
    return loss * config.eos_tail_weight


def evaluate_base(dlm: DiffusionLM, n: int) -> dict[str, float]:
    """Exact-match accuracy of the answer on each family's validation split (greedy sampling)."""
    config = SamplerConfig(gen_length=16, steps=16, block_length=4)  # the tiny eval default
    return exact_match_accuracy(dlm.tokenizer, n, lambda prompts: generate(dlm, prompts, config))


TINY_DLLM = BaseRecipe(
    "tiny dLLM", "tiny base", build_tiny_dlm, masked_diffusion_loss, evaluate_base
)


def pretrain(
    config: PretrainConfig,
    out_dir: Path,
    show_progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Train a fresh tiny dLLM and save it (model, tokenizer, report) into ``out_dir``."""
    return pretrain_base(TINY_DLLM, config, out_dir, show_progress, on_step)
