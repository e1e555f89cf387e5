"""Fine-tuning of one adapter with the masked-diffusion SFT loss (or, on an autoregressive base,
next-token loss: ``harness.causal.objective``; on a uniform-noise family, the canvas loss:
``harness.uniform_objective``): one readable loop, the objective chosen by :func:`objective_for`.

Every method trains through this loop with the same data order, the same per-example noise levels
and the same validation draws (for a given seed), so differences come from the method alone.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from harness.causal.objective import CausalObjective
from harness.config import TrainConfig
from harness.diffusion import (
    VALIDATION_SEED,
    MaskingConfig,
    diffusion_loss,
    mask_response,
    masked_token_ce,
    noise_bin_edges,
    sft_batch_of,
)
from harness.models.dlm import DiffusionLM
from harness.models.family import AUTOREGRESSIVE, MASKED_DIFFUSION
from harness.uniform_objective import UniformNoiseObjective


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


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA; exact fp32 on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


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


class DiffusionObjective:
    """The masked-diffusion SFT loss: one noise level per example, masks over the answer."""

    name = "masked-diffusion"

    def micro_loss(self, dlm, adapter, micro, config: TrainConfig, generator, autocast):
        tok, device = dlm.tokenizer, dlm.device
        masking = MaskingConfig(config.masking, normalize=config.normalize)
        ids, response = sft_batch_of(micro, tok, config.max_length)
        t = torch.rand(len(micro), generator=generator)
        batch = mask_response(ids, response, t, tok.mask_token_id, masking, generator)
        with autocast:
            logits = dlm(batch.input_ids.to(device), batch.noise_level.to(device))
        loss, _ = diffusion_loss(logits, _to(batch, device), masking)
        return loss, ids.numel()

    def validation_bins(self, dlm, val_data, config: TrainConfig, autocast) -> list[dict]:
        masking = MaskingConfig(config.masking, normalize=config.normalize)
        return validation_loss(dlm, val_data, config, masking)


# A denoiser's objective follows how its family corrupts text (Family.noise_process).
DENOISING_OBJECTIVES = {"masking": DiffusionObjective, "uniform": UniformNoiseObjective}


def objective_for(dlm):
    """The training objective of the base: next-token loss on an autoregressive base
    (``dlm.objective``), else the loss of its family's noise process."""
    if getattr(dlm, "objective", MASKED_DIFFUSION) == AUTOREGRESSIVE:
        return CausalObjective()
    return DENOISING_OBJECTIVES[dlm.family.noise_process]()


def _to(batch, device):
    if batch.target_ids.device == device:
        return batch
    from dataclasses import replace

    return replace(
        batch,
        input_ids=batch.input_ids.to(device),
        target_ids=batch.target_ids.to(device),
        masked=batch.masked.to(device),
        mask_prob=batch.mask_prob.to(device),
        noise_level=batch.noise_level.to(device),
        response_len=batch.response_len.to(device),
    )


@torch.no_grad()
def validation_loss(
    dlm: DiffusionLM, val_data: Sequence[Encoded], config: TrainConfig, masking: MaskingConfig
) -> list[dict]:
    """Loss per noise bin on the held-out examples, with the same masks for every method.

    Every validation example is noised at every bin's mid level (so each bin holds all the
    examples and the curve is smooth enough to read), with masks drawn from a fixed seed; we
    report the 1/p-weighted loss (the training objective) and the plain cross-entropy per masked
    token.
    """
    device = dlm.device
    tok = dlm.tokenizer
    generator = torch.Generator().manual_seed(VALIDATION_SEED)
    rows = []
    for lo, hi in noise_bin_edges(config.noise_bins):
        weighted_sum, ce_sum, tokens, count = 0.0, 0.0, 0, 0
        for start in range(0, len(val_data), config.batch_size):
            chunk = val_data[start : start + config.batch_size]
            ids, response = sft_batch_of(chunk, tok, config.max_length)
            t = torch.full((len(chunk),), (lo + hi) / 2)
            batch = mask_response(ids, response, t, tok.mask_token_id, masking, generator)
            with autocast_for(device):
                logits = dlm(batch.input_ids.to(device), batch.noise_level.to(device))
            batch = _to(batch, device)
            _, per_example = diffusion_loss(logits, batch, masking)
            ce, n = masked_token_ce(logits, batch)
            weighted_sum += float(per_example.sum())
            ce_sum += float(ce.sum())
            tokens += int(n.sum())
            count += len(chunk)
        rows.append(
            {
                "bin_lo": lo,
                "bin_hi": hi,
                "weighted_loss": weighted_sum / count,
                "ce_per_token": ce_sum / tokens if tokens else None,
                "n_tokens": tokens,
            }
        )
    return rows


def peak_memory_bytes(device: torch.device) -> int:
    """GPU: the allocator's peak for this cell. CPU: the process's peak resident set (includes
    earlier work in the same process, so an upper bound)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
