"""Uniform-noise block diffusion (DiffusionGemma): corruption, the noise level t, and the loss.

The training recipe follows the published DiffusionGemma SFT recipe (NVIDIA NeMo AutoModel,
``DiffusionGemmaSFTRecipe``, docs.nvidia.com/nemo/automodel/.../diffusiongemma): per example a
corruption level ``r ~ U(eps, 1)`` (eps = 1e-3); every canvas position is independently replaced
with a uniformly random vocabulary token with probability r (there is no mask token); the
decoder predicts the clean token at every canvas position (plain cross-entropy, no 1/r weight);
with probability 0.5 per example the decoder is self-conditioned on its own prediction for the
same noisy canvas (a first pass without gradient, as transformers' ``self_conditioning_mask``
is documented for). Two differences, both stated in the README: the canvas tail after the
answer is filled with EOS and supervised (bench's convention for every family, so the model
learns where to stop), and the recipe's extra autoregressive loss on the encoder is left out
(bench compares adapters on the denoising objective only).

The noise level fed to the adapters (``noise_level="drawn"``, the default) is **the fraction of
canvas positions whose token was drawn from noise** for the forward at hand: in training the
realised fraction of replaced positions (not the rate r), in sampling the fraction the sampler
renoised before this step (1 at the first step of a canvas). A drawn token may equal the clean
one by chance; it still counts as drawn, in training and sampling alike. The ablation
``noise_level="schedule"`` feeds the rate instead: r in training, the sampler's schedule position
``cur_step / max_denoising_steps`` in sampling. The prompt encoder always runs at level 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from harness.ground.errors import BenchError

NOISE_LEVELS = ("drawn", "schedule")


@dataclass(frozen=True)
class UniformNoiseConfig:
    """eps: lower end of the corruption rate; self_conditioning: per-example probability."""

    eps: float = 1e-3
    self_conditioning: float = 0.5
    noise_level: Literal["drawn", "schedule"] = "drawn"

    def __post_init__(self) -> None:
        if self.noise_level not in NOISE_LEVELS:
            raise BenchError(
                f"noise_level {self.noise_level!r} is not one of: {', '.join(NOISE_LEVELS)}"
            )
        if not 0.0 <= self.self_conditioning <= 1.0:
            raise BenchError(f"self_conditioning {self.self_conditioning} is not in [0, 1]")
        if not 0.0 <= self.eps < 1.0:
            raise BenchError(f"eps {self.eps} is not in [0, 1)")


@dataclass
class CanvasBatch:
    prompt_ids: torch.Tensor  # (B, P) left-padded with the pad id
    prompt_attention: torch.Tensor  # (B, P) 1 on real prompt tokens
    target: torch.Tensor  # (B, C) clean canvas: answer, EOS, EOS filling
    noisy: torch.Tensor  # (B, C) canvas fed to the decoder
    drawn: torch.Tensor  # (B, C) bool: position holds a token drawn from noise
    rate: torch.Tensor  # (B,) corruption rate r
    level: torch.Tensor  # (B,) the t fed to the adapters


def build_canvas_batch(
    prompts: list[list[int]], answers: list[list[int]], pad_id: int, eos_id: int, canvas: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(left-padded prompts, their 0/1 attention, clean canvases) for SFT pairs.

    The canvas holds the answer and EOS, cut to the canvas length, then EOS to the end (one
    block: answers longer than the canvas train on their first block only).
    """
    if any(not p for p in prompts):
        raise BenchError("every DiffusionGemma prompt needs at least one token")
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    target = torch.full((len(prompts), canvas), eos_id, dtype=torch.long)
    for i, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        attention[i, width - len(prompt) :] = 1
        body = (list(answer) + [eos_id])[:canvas]
        target[i, : len(body)] = torch.tensor(body, dtype=torch.long)
    return ids, attention, target


def renoise(
    target: torch.Tensor,
    rate: torch.Tensor,
    vocab_size: int,
    config: UniformNoiseConfig = UniformNoiseConfig(),
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noisy canvas, drawn mask, level): each position redrawn uniformly with probability r."""
    draws = torch.rand(target.shape, generator=generator)
    drawn = draws < rate[:, None]
    random = torch.randint(0, vocab_size, target.shape, generator=generator)
    noisy = torch.where(drawn, random, target)
    level = drawn.float().mean(dim=1) if config.noise_level == "drawn" else rate.float()
    return noisy, drawn, level


def corrupt(
    prompts: list[list[int]],
    answers: list[list[int]],
    dlm,
    config: UniformNoiseConfig = UniformNoiseConfig(),
    generator: torch.Generator | None = None,
    rate: torch.Tensor | None = None,
) -> CanvasBatch:
    """A training batch: prompts, clean and renoised canvases, per-example rate and level."""
    tok = dlm.tokenizer
    model_config = _config(dlm)
    ids, attention, target = build_canvas_batch(
        prompts, answers, tok.pad_token_id, tok.eos_token_id, model_config.canvas_length
    )
    if rate is None:
        u = torch.rand(len(prompts), generator=generator)
        rate = config.eps + (1 - config.eps) * u
    noisy, drawn, level = renoise(
        target, rate, model_config.text_config.vocab_size, config, generator
    )
    return CanvasBatch(ids, attention, target, noisy, drawn, rate, level)


def _config(dlm):
    from harness.models.diffusion_gemma import base_model

    return base_model(dlm.backbone).config


def canvas_logits(
    dlm,
    prompt_ids: torch.Tensor,
    prompt_attention: torch.Tensor,
    canvas: torch.Tensor,
    level: torch.Tensor,
    self_conditioning_logits: torch.Tensor | None = None,
    self_conditioning_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decoder logits (B, C, V) for ``canvas`` given the prompts, the decoder fed ``level``.

    Inputs as transformers' ``generate`` builds them: a 2-D prompt mask for the encoder, the
    same mask padded with ones over the canvas for the decoder, default positions.
    """
    if getattr(dlm, "canvas_levels", None) is None:
        raise BenchError(f"model {dlm.info.name!r} is not a DiffusionGemma model")
    device = dlm.device
    attention = prompt_attention.to(device)
    canvas_attention = F.pad(attention, (0, canvas.shape[1]), value=1)
    dlm.canvas_levels.level = level.to(device)
    try:
        out = dlm.backbone(
            input_ids=prompt_ids.to(device),
            attention_mask=attention,
            decoder_input_ids=canvas.to(device),
            decoder_attention_mask=canvas_attention,
            self_conditioning_logits=self_conditioning_logits,
            self_conditioning_mask=self_conditioning_mask,
        )
    finally:
        dlm.canvas_levels.level = None
    return out.logits


def batch_logits(
    dlm,
    batch: CanvasBatch,
    config: UniformNoiseConfig = UniformNoiseConfig(),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Logits for a training batch, self-conditioned per example as the recipe does."""
    args = (batch.prompt_ids, batch.prompt_attention, batch.noisy, batch.level)
    conditioned = torch.rand(batch.level.shape[0], generator=generator) < config.self_conditioning
    if not bool(conditioned.any()):
        return canvas_logits(dlm, *args)
    with torch.no_grad():
        first = canvas_logits(dlm, *args)
    return canvas_logits(dlm, *args, first.detach(), conditioned.to(dlm.device))


def canvas_loss(logits: torch.Tensor, batch: CanvasBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(scalar loss, per-example loss): cross-entropy averaged over every canvas position."""
    target = batch.target.to(logits.device)
    ce = F.cross_entropy(logits.float().transpose(1, 2), target, reduction="none")
    per_example = ce.mean(dim=1)
    return per_example.mean(), per_example
