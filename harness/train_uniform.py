"""Fine-tuning loop for uniform-noise families (DiffusionGemma), beside :mod:`harness.train`.

The same schedule, data order, best-validation checkpoint and result record as the masking loop
(``train_adapter`` hands uniform-noise families to :func:`train_uniform`); only the batch and the
loss differ: :mod:`harness.uniform_noise` corrupts the canvas, sets the per-example noise level
and self-conditions, as the family's SFT recipe does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from harness.config import TrainConfig
from harness.diffusion import noise_bin_edges
from harness.models.dlm import DiffusionLM
from harness.train import (
    VALIDATION_SEED,
    Encoded,
    TrainResult,
    _batches,
    adapter_optimizer,
    autocast_for,
    lr_at,
    peak_memory_bytes,
    total_updates,
)
from harness.uniform_noise import UniformNoiseConfig, batch_logits, canvas_loss, corrupt


def train_uniform(
    dlm: DiffusionLM,
    adapter,
    train_data: Sequence[Encoded],
    val_data: Sequence[Encoded],
    config: TrainConfig,
    seed: int,
    on_update: Callable[[int, int, float], None] | None = None,
    noise: UniformNoiseConfig = UniformNoiseConfig(),
) -> TrainResult:
    """Train ``adapter`` with the uniform-noise canvas loss; the best validation state is kept."""
    device = dlm.device
    params = adapter.trainable_parameters()
    optimizer = adapter_optimizer(adapter, config)
    if config.gradient_checkpointing:
        dlm.enable_gradient_checkpointing()
    total = total_updates(config, len(train_data))
    generator = torch.Generator().manual_seed(seed)
    batches = _batches(train_data, config.batch_size, generator)
    result = TrainResult(updates=total)
    best_state = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    dlm.train()
    for step in range(total):
        lr = lr_at(step, total, config)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        adapter.on_step(step, total)
        step_loss = 0.0
        for _ in range(config.grad_accum):
            micro = next(batches)
            batch = corrupt([p for p, _ in micro], [a for _, a in micro], dlm, noise, generator)
            with autocast_for(device):
                logits = batch_logits(dlm, batch, noise, generator)
            loss, _ = canvas_loss(logits, batch)
            (loss / config.grad_accum).backward()
            step_loss += loss.item() / config.grad_accum
            result.tokens += batch.prompt_ids.numel() + batch.target.numel()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        point = {"step": step + 1, "loss": step_loss, "lr": lr}
        if val_data and ((step + 1) % config.val_every == 0 or step + 1 == total):
            dlm.eval()
            bins = validation_loss_uniform(dlm, val_data, config, noise)
            dlm.train()
            val_loss = sum(b["weighted_loss"] for b in bins) / len(bins)
            point["val_loss"] = val_loss
            if val_loss < result.best_val_loss:
                result.best_val_loss, result.best_step, result.val_bins = val_loss, step + 1, bins
                best_state = [p.detach().clone() for p in params]
        result.curve.append(point)
        if on_update is not None:
            on_update(step + 1, total, step_loss)
    result.train_time_s = time.perf_counter() - start
    if best_state is not None:
        with torch.no_grad():
            for p, best in zip(params, best_state, strict=True):
                p.copy_(best)
    dlm.eval()
    result.peak_memory_bytes = peak_memory_bytes(device)
    return result


@torch.no_grad()
def validation_loss_uniform(
    dlm: DiffusionLM,
    val_data: Sequence[Encoded],
    config: TrainConfig,
    noise: UniformNoiseConfig = UniformNoiseConfig(),
) -> list[dict]:
    """Canvas cross-entropy per corruption-rate bin (rate at the bin's middle, fixed draws, no
    self-conditioning), with the same draws for every method. ``weighted_loss`` is the plain
    cross-entropy here: the uniform-noise loss has no 1/t weight."""
    generator = torch.Generator().manual_seed(VALIDATION_SEED)
    rows = []
    for lo, hi in noise_bin_edges(config.noise_bins):
        total, tokens, count = 0.0, 0, 0
        for start in range(0, len(val_data), config.batch_size):
            chunk = val_data[start : start + config.batch_size]
            rate = torch.full((len(chunk),), (lo + hi) / 2)
            batch = corrupt(
                [p for p, _ in chunk], [a for _, a in chunk], dlm, noise, generator, rate
            )
            with autocast_for(dlm.device):
                logits = batch_logits(
                    dlm, batch, UniformNoiseConfig(noise.eps, 0.0, noise.noise_level)
                )
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
