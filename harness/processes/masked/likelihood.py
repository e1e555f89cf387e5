"""Monte Carlo log-likelihood of a continuation under a masked-diffusion LM (LLaDA's estimator).

For a target of length L it masks exactly n target tokens (prompt visible), with n spread evenly
over 1..L across the samples of a batch (stratified), and averages ``L / n * sum(CE over masked)``.
That is an unbiased estimate of an upper bound on -log p(target | prefix); we return its negative
as the log-likelihood, with a standard error over Monte Carlo samples.

``masks`` says how a batch's masks are drawn:

- ``llada`` (default): exactly as LLaDA's lm-eval model (``_forward_process`` in ML-GSAI/LLaDA
  ``eval_llada.py``): one offset ``k`` in 1..L, counts ``round(k + i L / b)`` wrapped into 1..L,
  and each row's masked positions from ``randperm``. Given the same seed, the masks, and so the
  estimate, are LLaDA's (up to float rounding: bench sums the cross-entropy in float32, LLaDA in
  the logits' dtype).
- ``stratified``: counts ``round(i (L - 1) / (b - 1))`` after the offset (both ends of 1..L in every
  batch), positions by ranking uniform scores.

``cfg_scale`` > 0 is LLaDA's unsupervised classifier-free guidance: the logits are
``u + (s + 1)(c - u)`` with ``u`` from a copy whose prompt is all masks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.ground.errors import BenchError
from harness.models.dlm import DiffusionLM

MASK_DRAWS = ("llada", "stratified")


@dataclass(frozen=True)
class LikelihoodConfig:
    mc_num: int = 128
    batch_size: int = 32
    seed: int = 0
    masks: str = "llada"
    cfg_scale: float = 0.0

    def __post_init__(self) -> None:
        if self.mc_num <= 0 or self.batch_size <= 0:
            raise BenchError("mc_num and batch_size must be positive")
        if self.mc_num % self.batch_size:
            raise BenchError(
                f"mc_num {self.mc_num} must be a multiple of batch_size {self.batch_size}"
            )
        if self.masks not in MASK_DRAWS:
            raise BenchError(f"mc_masks {self.masks!r} is not one of: {', '.join(MASK_DRAWS)}")
        if self.cfg_scale < 0:
            raise BenchError("cfg_scale must be >= 0")


@dataclass(frozen=True)
class LikelihoodEstimate:
    loglik: float  # estimate of log p(target | prefix) (a lower bound in expectation)
    stderr: float
    mc_num: int


def stratified_mask_counts(length: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """n_i in 1..L for one Monte Carlo batch: one random offset, then evenly spaced strata."""
    offset = int(torch.randint(1, length + 1, (1,), generator=generator))
    spread = torch.linspace(0, length - 1, batch).round().long()
    return (offset - 1 + spread) % length + 1


def stratified_masks(length: int, batch: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
    counts = stratified_mask_counts(length, batch, generator)
    scores = torch.rand((batch, length), generator=generator)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return ranks < counts[:, None], counts


def llada_masks(length: int, batch: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """LLaDA's draw, call for call (the same random numbers from the same seed)."""
    k = torch.randint(1, length + 1, (), generator=generator)
    end = k + (batch - 1) * (length / batch)  # a float32 tensor, as in the reference
    counts = torch.round(torch.linspace(float(k), end, steps=batch)).long()
    counts = ((counts - 1) % length) + 1
    masked = torch.arange(length).repeat(batch, 1) < counts[:, None]
    for i in range(batch):
        masked[i] = masked[i][torch.randperm(length, generator=generator)]
    return masked, counts


MASKS = {"llada": llada_masks, "stratified": stratified_masks}


@torch.no_grad()
def estimate_loglikelihood(
    dlm: DiffusionLM,
    prefix: Sequence[int],
    target: Sequence[int],
    config: LikelihoodConfig = LikelihoodConfig(),
) -> LikelihoodEstimate:
    if len(target) == 0:
        raise BenchError("cannot score an empty continuation")
    if dlm.info.shift_logits and len(prefix) == 0:
        raise BenchError(
            f"{dlm.info.name}: a continuation at position 0 has no logits in a shifted-logit "
            "model (Dream); the prefix must start with BOS (tokenizer.encode_prompt)"
        )
    generator = torch.Generator().manual_seed(config.seed)
    device = dlm.device
    seq = torch.tensor(list(prefix) + list(target), dtype=torch.long, device=device)
    p_len, length = len(prefix), len(target)
    samples = []
    for _ in range(config.mc_num // config.batch_size):
        masked_target, counts = MASKS[config.masks](length, config.batch_size, generator)
        masked_target = masked_target.to(device)
        masked = torch.zeros((config.batch_size, seq.numel()), dtype=torch.bool, device=device)
        masked[:, p_len:] = masked_target
        x = seq.expand(config.batch_size, -1).masked_fill(masked, dlm.mask_id)
        level = counts.to(device).float() / length
        logits = _guided(dlm, x, level, p_len, config.cfg_scale)
        ce = F.cross_entropy(
            logits[:, p_len:].float().transpose(1, 2),
            seq[p_len:].expand(config.batch_size, -1),
            reduction="none",
        )
        samples.append((ce * masked_target).sum(dim=1) * length / counts.to(device))
    nll = torch.cat(samples).double()
    stderr = float(nll.std(unbiased=True) / math.sqrt(nll.numel())) if nll.numel() > 1 else 0.0
    return LikelihoodEstimate(loglik=-float(nll.mean()), stderr=stderr, mc_num=nll.numel())


def _guided(dlm, x: torch.Tensor, level: torch.Tensor, p_len: int, cfg_scale: float):
    if cfg_scale <= 0:
        return dlm(x, level)
    unconditional = x.clone()
    unconditional[:, :p_len] = dlm.mask_id
    both = dlm(torch.cat([x, unconditional]), torch.cat([level, level]))
    cond, uncond = both.chunk(2)
    return uncond + (cfg_scale + 1) * (cond - uncond)
