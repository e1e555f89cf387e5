"""Monte Carlo log-likelihood of a continuation under a masked-diffusion LM (LLaDA's estimator).

For a target of length L it masks exactly n target tokens (prompt visible), with n spread evenly
over 1..L across the samples of a batch (stratified), and averages ``L / n * sum(CE over masked)``.
That is an unbiased estimate of an upper bound on -log p(target | prefix); we return its negative
as the log-likelihood, with a standard error over Monte Carlo samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.ground.errors import BenchError
from harness.models.dlm import DiffusionLM


@dataclass(frozen=True)
class LikelihoodConfig:
    mc_num: int = 128
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mc_num <= 0 or self.batch_size <= 0:
            raise BenchError("mc_num and batch_size must be positive")
        if self.mc_num % self.batch_size:
            raise BenchError(
                f"mc_num {self.mc_num} must be a multiple of batch_size {self.batch_size}"
            )


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
        counts = stratified_mask_counts(length, config.batch_size, generator)
        scores = torch.rand((config.batch_size, length), generator=generator)
        ranks = scores.argsort(dim=1).argsort(dim=1)
        masked_target = (ranks < counts[:, None]).to(device)
        masked = torch.zeros((config.batch_size, seq.numel()), dtype=torch.bool, device=device)
        masked[:, p_len:] = masked_target
        x = seq.expand(config.batch_size, -1).masked_fill(masked, dlm.mask_id)
        level = counts.to(device).float() / length
        logits = dlm(x, level)
        ce = F.cross_entropy(
            logits[:, p_len:].float().transpose(1, 2),
            seq[p_len:].expand(config.batch_size, -1),
            reduction="none",
        )
        samples.append((ce * masked_target).sum(dim=1) * length / counts.to(device))
    nll = torch.cat(samples).double()
    stderr = float(nll.std(unbiased=True) / math.sqrt(nll.numel())) if nll.numel() > 1 else 0.0
    return LikelihoodEstimate(loglik=-float(nll.mean()), stderr=stderr, mc_num=nll.numel())
