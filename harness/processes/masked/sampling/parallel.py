"""Which masked positions one denoising step commits: the plain fixed count, or a parallel rule.

- ``none``: the schedule's count, the most confident positions first (LLaDA's rule).
- ``threshold:X``: every position whose confidence is above X, and at least the schedule's count
  (at least one). Strictly above X makes ``threshold:1.0`` exactly the plain rule even where a
  float32 softmax rounds a probability to 1.
- ``factor:X``: with the confidences sorted, ``c_1 >= c_2 >= ...``, the longest head where every
  ``c_i >= 1 - X / (i + 1)`` (the first always), and at least the schedule's count.
- ``fastdllm-threshold:X``: Fast-dLLM's rule (``get_transfer_index`` with ``threshold``, NVlabs/
  Fast-dLLM 24cc59e): the most confident masked position of the block plus every one at or above
  X; the schedule's count plays no part, and the sampler repeats the step until the block is full.
- ``fastdllm-factor:X``: Fast-dLLM's factor rule (``get_transfer_index_dynamic``, NVlabs/Fast-dLLM
  f6b35ec): the head of ``factor:X`` without the schedule's floor, where a head that stops only
  at the block's last masked position takes that position too (the reference's loop bound).

The schedule's floor of ``threshold:X`` and ``factor:X`` is why they differ from Fast-dLLM's:
with Fast-dLLM's published arguments (``steps = gen_length / block_length``) the floor is the
whole block, so each block is decoded in one forward. A row commits at most as many positions as
it has eligible.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from harness.config.sampling import ParallelRule

CountFn = Callable[[torch.Tensor, float], torch.Tensor]


def _threshold_count(confidence: torch.Tensor, value: float) -> torch.Tensor:
    return (confidence > value).sum(dim=1)


def _head_passing(confidence: torch.Tensor, value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(length of the passing head of the sorted confidences, eligible count) per row."""
    ordered = confidence.sort(dim=1, descending=True).values
    rank = torch.arange(1, ordered.shape[1] + 1, device=ordered.device, dtype=ordered.dtype)
    passes = ordered >= 1 - value / (rank + 1)
    passes[:, 0] = True
    passes &= ordered > -torch.inf
    return passes.long().cumprod(dim=1).sum(dim=1), (ordered > -torch.inf).sum(dim=1)


def _factor_count(confidence: torch.Tensor, value: float) -> torch.Tensor:
    return _head_passing(confidence, value)[0]


def _fastdllm_threshold_count(confidence: torch.Tensor, value: float) -> torch.Tensor:
    return (confidence >= value).sum(dim=1).clamp(min=1)


def _fastdllm_factor_count(confidence: torch.Tensor, value: float) -> torch.Tensor:
    head, available = _head_passing(confidence, value)
    return torch.where(head == available - 1, available, head)


PARALLEL_COUNTS: dict[str, CountFn] = {
    "threshold": _threshold_count,
    "factor": _factor_count,
    "fastdllm-threshold": _fastdllm_threshold_count,
    "fastdllm-factor": _fastdllm_factor_count,
}


def commit_mask(
    confidence: torch.Tensor, eligible: torch.Tensor, count: int, rule: ParallelRule
) -> torch.Tensor:
    """Positions to commit; ``confidence`` is already ``-inf`` wherever ``eligible`` is False.
    ``count`` is the schedule's (ignored by Fast-dLLM's rules)."""
    if rule.kind == "none":
        chosen = confidence.topk(count, dim=1).indices
        return torch.zeros_like(eligible).scatter_(1, chosen, True) & eligible
    available = eligible.sum(dim=1)
    wanted = PARALLEL_COUNTS[rule.kind](confidence, float(rule.value))
    floor = 1 if rule.ignores_steps else max(1, count)
    per_row = torch.minimum(torch.clamp(wanted, min=floor), available)
    top = int(per_row.max())
    order = confidence.topk(top, dim=1).indices
    keep = torch.arange(top, device=confidence.device)[None, :] < per_row[:, None]
    chosen = torch.zeros_like(eligible)
    chosen.scatter_(1, order, keep)
    return chosen & eligible
