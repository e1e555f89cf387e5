"""Masked-diffusion forward process and training loss (LLaDA convention), shared by every method.

The noise level drawn here per example is what the runner hands to the noise channel, so every
method sees the same t for the same example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from harness.config.cell import LOSS_NORMALIZATIONS, MASKING_MODES
from harness.ground.errors import BenchError


@dataclass(frozen=True)
class MaskingConfig:
    """How response tokens are masked and how the loss is normalised.

    mode: "bernoulli" masks each response token with p = (1 - eps) t + eps (LLaDA);
          "exact" masks exactly ceil(t * L) of them, at least one (the NaRA release).
    normalize: "answer_length" divides each example's loss by its response length (LLaDA SFT);
               "token" divides the batch sum by the number of response tokens in the batch.
    """

    mode: Literal["bernoulli", "exact"] = "bernoulli"
    eps: float = 1e-3
    normalize: Literal["answer_length", "token"] = "answer_length"

    def __post_init__(self) -> None:
        if self.mode not in MASKING_MODES:
            raise BenchError(
                f"masking mode {self.mode!r} is not one of: {', '.join(MASKING_MODES)}"
            )
        if self.normalize not in LOSS_NORMALIZATIONS:
            raise BenchError(
                f"loss normalisation {self.normalize!r} is not one of: "
                f"{', '.join(LOSS_NORMALIZATIONS)}"
            )


@dataclass
class NoisyBatch:
    input_ids: torch.Tensor  # (B, L) with masked positions replaced by the mask id
    target_ids: torch.Tensor  # (B, L) clean sequence
    masked: torch.Tensor  # (B, L) bool
    mask_prob: torch.Tensor  # (B,) probability used for 1/p weighting
    noise_level: torch.Tensor  # (B,) the t fed to the noise channel
    response_len: torch.Tensor  # (B,) number of maskable (response) tokens
    attention_mask: torch.Tensor | None = None


def sample_noise_levels(batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    return torch.rand(batch_size, generator=generator)


def _random_ranks(response: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A uniformly random order of each row's response positions (0 = first); others rank last."""
    scores = torch.rand(response.shape, generator=generator).to(response.device)
    scores = scores.masked_fill(~response, 2.0)
    return scores.argsort(dim=1).argsort(dim=1)


def mask_response(
    input_ids: torch.Tensor,
    response_mask: torch.Tensor,
    t: torch.Tensor,
    mask_id: int,
    config: MaskingConfig = MaskingConfig(),
    generator: torch.Generator | None = None,
    attention_mask: torch.Tensor | None = None,
) -> NoisyBatch:
    """Mask response tokens at level t per example; prompt tokens are never masked."""
    response = response_mask.bool()
    response_len = response.sum(dim=1)
    if bool((response_len == 0).any()):
        raise ValueError("every example needs at least one response token")
    t = t.to(input_ids.device, torch.float32)
    if config.mode == "bernoulli":
        p = (1 - config.eps) * t + config.eps
        draws = torch.rand(input_ids.shape, generator=generator).to(input_ids.device)
        masked = (draws < p[:, None]) & response
    else:
        k = torch.ceil(t * response_len).clamp(min=1).minimum(response_len)
        masked = (_random_ranks(response, generator) < k[:, None]) & response
        p = k.float() / response_len.float()
    noisy = input_ids.masked_fill(masked, mask_id)
    return NoisyBatch(noisy, input_ids, masked, p, t, response_len, attention_mask)


def diffusion_loss(
    logits: torch.Tensor, batch: NoisyBatch, config: MaskingConfig = MaskingConfig()
) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1/p-weighted masked cross-entropy: (scalar loss, per-example loss).

    Per-example values are always normalised by the example's response length so that they can be
    binned by noise level; the scalar follows ``config.normalize``.
    """
    ce = F.cross_entropy(logits.float().transpose(1, 2), batch.target_ids, reduction="none")
    weighted = (ce * batch.masked / batch.mask_prob[:, None]).sum(dim=1)
    per_example = weighted / batch.response_len
    if config.normalize == "answer_length":
        return per_example.mean(), per_example
    return weighted.sum() / batch.response_len.sum(), per_example


def masked_token_ce(logits: torch.Tensor, batch: NoisyBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain (unweighted) cross-entropy summed over masked tokens, and their count, per example.

    The 1/p-weighted loss is nearly flat across noise levels; this is what shows how hard each
    noise level is.
    """
    ce = F.cross_entropy(logits.float().transpose(1, 2), batch.target_ids, reduction="none")
    return (ce * batch.masked).sum(dim=1), batch.masked.sum(dim=1)


def build_sft_batch(
    prompts: list[list[int]],
    answers: list[list[int]],
    eos_id: int,
    max_length: int | None = None,
    prefix: tuple[int, ...] | list[int] = (),
    response_length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """[prompt | answer | EOS padding] right-padded with EOS, and the response mask.

    The EOS padding belongs to the response: the model is trained to predict it and so learns
    where to stop. By default rows are padded to the batch's longest row; ``response_length``
    pads them further, to the longest prompt plus that many response tokens (LLaDA's SFT pads
    every response with EOS to a long fixed length, so that a sampler asked for that many tokens
    has seen the whole EOS tail in training). Over-long rows keep their prompt and cut the answer (at least one token kept);
    a prompt cut at its head keeps ``prefix`` (the family's BOS) in front, so a model whose
    position 0 is never scored (Dream) never sees its first answer token there.
    """
    prefix = list(prefix)
    rows = []
    for prompt, answer in zip(prompts, answers, strict=True):
        prompt, answer = list(prompt), list(answer) + [eos_id]
        if max_length is not None and len(prompt) + len(answer) > max_length:
            keep = max(1, max_length - max(len(prompt), len(prefix)))
            room = max_length - keep
            if len(prompt) > room:
                has_prefix = bool(prefix) and prompt[: len(prefix)] == prefix
                body = prompt[len(prefix) :] if has_prefix else prompt
                head = prefix if has_prefix else []
                tail = room - len(head)
                prompt = head + (body[-tail:] if tail > 0 else [])
            answer = answer[:keep]
        rows.append((prompt, answer))
    length = max(len(p) + len(a) for p, a in rows)
    if response_length is not None:
        length = max(length, max(len(p) for p, _ in rows) + response_length)
    ids = torch.full((len(rows), length), eos_id, dtype=torch.long)
    response = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, (p, a) in enumerate(rows):
        ids[i, : len(p)] = torch.tensor(p, dtype=torch.long)
        ids[i, len(p) : len(p) + len(a)] = torch.tensor(a, dtype=torch.long)
        response[i, len(p) :] = True
    return ids, response


def sft_batch_of(
    pairs, tok, max_length: int | None, eos_tail: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`build_sft_batch` for encoded (prompt, answer) pairs with the tokenizer's EOS and
    its family's BOS prefix: the batch every fine-tuning objective starts from. ``eos_tail``:
    responses padded with EOS to that many tokens (0: to the longest row), within
    ``max_length``."""
    response_length = None
    if eos_tail:
        longest_prompt = max(len(p) for p, _ in pairs)
        room = eos_tail if max_length is None else min(eos_tail, max_length - longest_prompt)
        response_length = max(room, 0) or None
    return build_sft_batch(
        [p for p, _ in pairs],
        [a for _, a in pairs],
        tok.eos_token_id,
        max_length,
        tok.bos_prefix,
        response_length,
    )


VALIDATION_SEED = 1234  # the same validation draws for every method, seed and objective


def noise_bin_edges(bins: int = 10) -> list[tuple[float, float]]:
    return [(i / bins, (i + 1) / bins) for i in range(bins)]


def stratified_levels(
    batch_size: int, bin_lo: float, bin_hi: float, generator=None
) -> torch.Tensor:
    """Noise levels drawn uniformly inside one bin (for validation loss per noise bin)."""
    return bin_lo + (bin_hi - bin_lo) * torch.rand(batch_size, generator=generator)
