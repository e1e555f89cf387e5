"""Which masked positions one denoising step commits: the plain fixed count, or a parallel rule.

- ``none``: the schedule's count, the most confident positions first (LLaDA's rule).
- ``threshold:X``: every position whose confidence is above X, and at least the schedule's count
  (at least one). Fast-dLLM keeps ``>= X``; strictly above X makes ``threshold:1.0`` exactly the
  plain rule even where a float32 softmax rounds a probability to 1.
- ``factor:X``: Fast-dLLM's factor rule: with the confidences sorted, ``c_1 >= c_2 >= ...``,
  commit the longest head where every ``c_i >= 1 - X / (i + 1)`` (the first always), and at least
  the schedule's count.

A row commits at most as many positions as it has eligible.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from harness.config.sampling import ParallelRule

CountFn = Callable[[torch.Tensor, float], torch.Tensor]


def _threshold_count(confidence: torch.Tensor, value: float) -> torch.Tensor:
    return (confidence > value).sum(dim=1)


def _factor_count(confidence: torch.Tensor, value: float) -> torch.Tensor:
    ordered = confidence.sort(dim=1, descending=True).values
    rank = torch.arange(1, ordered.shape[1] + 1, device=ordered.device, dtype=ordered.dtype)
    passes = ordered >= 1 - value / (rank + 1)
    passes[:, 0] = True
    passes &= ordered > -torch.inf
    return passes.long().cumprod(dim=1).sum(dim=1)


PARALLEL_COUNTS: dict[str, CountFn] = {"threshold": _threshold_count, "factor": _factor_count}


def commit_mask(
    confidence: torch.Tensor, eligible: torch.Tensor, count: int, rule: ParallelRule
) -> torch.Tensor:
    """Positions to commit; ``confidence`` is already ``-inf`` wherever ``eligible`` is False."""
    if rule.kind == "none":
        chosen = confidence.topk(count, dim=1).indices
        return torch.zeros_like(eligible).scatter_(1, chosen, True) & eligible
    available = eligible.sum(dim=1)
    wanted = PARALLEL_COUNTS[rule.kind](confidence, float(rule.value))
    per_row = torch.minimum(torch.clamp(wanted, min=max(1, count)), available)
    top = int(per_row.max())
    order = confidence.topk(top, dim=1).indices
    keep = torch.arange(top, device=confidence.device)[None, :] < per_row[:, None]
    chosen = torch.zeros_like(eligible)
    chosen.scatter_(1, order, keep)
    return chosen & eligible
