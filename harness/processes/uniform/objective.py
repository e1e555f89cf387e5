"""The training objective of uniform-noise families (DiffusionGemma), for the one training loop.

:func:`harness.processes.training.objective_for` hands it to :func:`~harness.processes.training.train_adapter` for a
family whose ``noise_process`` is uniform, so the schedule, data order, best-validation checkpoint
and result record are the masking loop's; only the batch and the loss differ:
:mod:`harness.processes.uniform.forward` corrupts the canvas, sets the per-example noise level and
self-conditions, as the family's SFT recipe does.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

import torch

from harness.config.cell import TrainConfig
from harness.processes.masked.forward import VALIDATION_SEED, noise_bin_edges
from harness.processes.uniform.forward import UniformNoiseConfig, batch_logits, canvas_loss, corrupt

Encoded = tuple[list[int], list[int]]  # (prompt ids, answer ids)


class UniformNoiseObjective:
    """The uniform-noise canvas loss: one corruption rate per example, self-conditioned."""

    name = "uniform-noise"

    def __init__(self, noise: UniformNoiseConfig = UniformNoiseConfig()) -> None:
        self.noise = noise

    def micro_loss(self, dlm, adapter, micro, config: TrainConfig, generator, autocast):
        config.refuse_eos_tail("uniform")
        batch = corrupt([p for p, _ in micro], [a for _, a in micro], dlm, self.noise, generator)
        with autocast:
            logits = batch_logits(dlm, batch, self.noise, generator)
        loss, _ = canvas_loss(logits, batch)
        return loss, batch.prompt_ids.numel() + batch.target.numel()

    def validation_bins(self, dlm, val_data, config: TrainConfig, autocast) -> list[dict]:
        return validation_loss_uniform(dlm, val_data, config, autocast, self.noise)


@torch.no_grad()
def validation_loss_uniform(
    dlm,
    val_data: Sequence[Encoded],
    config: TrainConfig,
    autocast: AbstractContextManager,
    noise: UniformNoiseConfig = UniformNoiseConfig(),
) -> list[dict]:
    """Canvas cross-entropy per corruption-rate bin (rate at the bin's middle, fixed draws, no
    self-conditioning), with the same draws for every method. ``weighted_loss`` is the plain
    cross-entropy here: the uniform-noise loss has no 1/t weight."""
    generator = torch.Generator().manual_seed(VALIDATION_SEED)
    plain = UniformNoiseConfig(noise.eps, 0.0, noise.noise_level)
    rows = []
    for lo, hi in noise_bin_edges(config.noise_bins):
        total, tokens, count = 0.0, 0, 0
        for start in range(0, len(val_data), config.batch_size):
            chunk = val_data[start : start + config.batch_size]
            rate = torch.full((len(chunk),), (lo + hi) / 2)
            batch = corrupt(
                [p for p, _ in chunk], [a for _, a in chunk], dlm, noise, generator, rate
            )
            with autocast:
                logits = batch_logits(dlm, batch, plain)
            _, per_example = canvas_loss(logits, batch)
            total += float(per_example.sum())
            tokens += batch.target.numel()
            count += len(chunk)
        mean = total / count
        rows.append(
            {
                "bin_lo": lo,
                "bin_hi": hi,
                "weighted_loss": mean,
                "ce_per_token": mean,
                "n_tokens": tokens,
            }
        )
    return rows
