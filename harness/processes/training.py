"""Fine-tuning of one adapter: one readable loop for every noise process, the loss its base's
process defines (:func:`objective_for`: masked diffusion, uniform noise or next-token).

Every method trains through this loop with the same data order, the same per-example noise levels
and the same validation draws (for a given seed), so differences come from the method alone.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from harness.config.cell import TrainConfig
from harness.ground.device import autocast_for
from harness.models.dlm import DiffusionLM
from harness.processes.registry import process_of


@dataclass
class TrainResult:
    curve: list[dict] = field(default_factory=list)  # {step, loss, lr[, val_loss]}
    val_bins: list[dict] = field(default_factory=list)  # best checkpoint's loss per noise bin
    best_step: int = 0
    best_val_loss: float = math.inf
    updates: int = 0
    train_time_s: float = 0.0
    tokens: int = 0
    peak_memory_bytes: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.train_time_s if self.train_time_s > 0 else 0.0


Encoded = tuple[list[int], list[int]]  # (prompt ids, answer ids)


def total_updates(config: TrainConfig, n_examples: int) -> int:
    if config.steps is not None:
        return config.steps
    per_update = config.batch_size * config.grad_accum
    return max(1, math.ceil(config.epochs * n_examples / per_update))


def lr_at(step: int, total: int, config: TrainConfig) -> float:
    """Linear warmup, then linear decay to zero (the release's schedule)."""
    warmup = max(1, round(config.warmup_ratio * total))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    return config.lr * max(0.0, (total - step) / max(1, total - warmup))


def _batches(data: Sequence[Encoded], batch_size: int, generator: torch.Generator):
    """Endless seeded epochs of shuffled micro-batches."""
    while True:
        order = torch.randperm(len(data), generator=generator).tolist()
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield [data[i] for i in order[start : start + batch_size]]
        if len(order) < batch_size:
            yield [data[i] for i in order]


def adapter_optimizer(adapter, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the adapter's parameter groups (their ``lr_scale`` applied per step): the one
    optimizer every family's training loop uses, so a comparison never differs by it."""
    return torch.optim.AdamW(
        adapter.optimizer_groups(),
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        eps=config.eps,
        weight_decay=config.weight_decay,
    )


def train_adapter(
    dlm: DiffusionLM,
    adapter,
    train_data: Sequence[Encoded],
    val_data: Sequence[Encoded],
    config: TrainConfig,
    seed: int,
    on_update: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train ``adapter``'s parameters; at the end the best validation checkpoint is loaded."""
    device = dlm.device
    objective = objective_for(dlm)
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
            loss, tokens = objective.micro_loss(
                dlm, adapter, micro, config, generator, autocast_for(device)
            )
            (loss / config.grad_accum).backward()
            step_loss += loss.item() / config.grad_accum
            result.tokens += tokens
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        point = {"step": step + 1, "loss": step_loss, "lr": lr}
        last = step + 1 == total
        if val_data and ((step + 1) % config.val_every == 0 or last):
            dlm.eval()
            bins = objective.validation_bins(dlm, val_data, config, autocast_for(device))
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


def validate_untrained(
    dlm: DiffusionLM, val_data: Sequence[Encoded], config: TrainConfig
) -> TrainResult:
    """The validation loss per noise bin of a model that is not trained (the base model), with
    exactly the draws :func:`train_adapter` uses, so its curve sits beside the adapters'."""
    dlm.eval()
    result = TrainResult(updates=0)
    if val_data:
        objective = objective_for(dlm)
        result.val_bins = objective.validation_bins(dlm, val_data, config, autocast_for(dlm.device))
        result.best_val_loss = sum(b["weighted_loss"] for b in result.val_bins) / len(
            result.val_bins
        )
    result.peak_memory_bytes = peak_memory_bytes(dlm.device)
    return result


def peak_memory_bytes(device: torch.device) -> int:
    """GPU: the allocator's peak for this cell. CPU: the process's peak resident set (includes
    earlier work in the same process, so an upper bound)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def objective_for(dlm):
    """The training objective of the base's noise process (its family names the process)."""
    return process_of(dlm).objective()
