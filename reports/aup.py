"""AUP (accuracy under parallelism): one number for a fast sampler's speed and accuracy together.

The d3LLM authors score parallel decoders by AUP (Qian et al., "AUP: when Accuracy Meets
Parallelism in Diffusion Language Models", the hao-ai-lab blog post on text diffusion, and the
d3LLM repository's ``AUP_leaderboard``: ``aup_utils.get_aup`` and ``main.py``). It is measured
in tokens per forward (TPF), not tokens per second, so it does not depend on the hardware:

- the points ``(rho_i, y_i)`` of one decoding method (TPF, accuracy in percent) are sorted by
  TPF; only points with ``y_i >= y_1 - 5`` are kept (``y_1``: the accuracy at the lowest TPF);
- ``AUP = rho_1 y_1 + 1/2 sum_{i>=2} (rho_i - rho_{i-1}) (y_i W(y_i) + y_{i-1} W(y_{i-1}))``, a
  trapezoid under the accuracy-parallelism curve in which each accuracy is weighted by
  ``W(y) = min(exp(-alpha (1 - y / y_max)), 1)`` with ``alpha = 3``;
- ``y_max`` is the highest accuracy any method reaches on that task (the leaderboard takes it
  over all the methods it compares), so a point below the best is discounted exponentially.

A single point scores ``rho_1 y_1``; the plain sampler (one token per forward) scores its
accuracy. Where the reference asserts that the last point lies within 5 points of the first,
this drops the points below ``y_1 - 5``, as the definition in the blog post says.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

ALPHA = 3.0
Y_MIN_OFFSET = 5.0


def weight(y: float, y_max: float, alpha: float = ALPHA) -> float:
    """W(y) = min(exp(-alpha (1 - y / y_max)), 1); accuracies in percent."""
    if y_max <= 0:
        return 1.0
    return min(math.exp(-alpha * (1 - y / y_max)), 1.0)


def aup(
    points: Iterable[tuple[float, float]],
    y_max: float,
    alpha: float = ALPHA,
    y_min_offset: float = Y_MIN_OFFSET,
) -> float:
    """The AUP of ``(tokens per forward, accuracy in percent)`` points of one method on one task.

    Ties in TPF keep their given order (the first one is ``y_1`` when it has the lowest TPF)."""
    ordered = sorted(points, key=lambda p: p[0])
    if not ordered:
        raise ValueError("AUP needs at least one (tokens per forward, accuracy) point")
    if any(rho <= 0 for rho, _ in ordered):
        raise ValueError("tokens per forward must be positive")
    y_min = ordered[0][1] - y_min_offset
    kept = [(rho, y) for rho, y in ordered if y >= y_min]
    total = kept[0][0] * kept[0][1]
    for (rho_a, y_a), (rho_b, y_b) in zip(kept, kept[1:], strict=False):
        total += (
            0.5
            * (rho_b - rho_a)
            * (y_b * weight(y_b, y_max, alpha) + y_a * weight(y_a, y_max, alpha))
        )
    return total
