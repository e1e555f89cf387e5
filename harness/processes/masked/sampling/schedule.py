"""How many tokens of a block each of its steps commits under the fixed-count rule."""

from __future__ import annotations

import math
from collections.abc import Callable

SCHEDULES: dict[str, Callable[[float], float]] = {
    # Cumulative fraction of a block's tokens unmasked after a fraction tau of its steps.
    "linear": lambda tau: tau,
    "cosine": lambda tau: 1.0 - math.cos(math.pi * tau / 2),
    "cosmap": lambda tau: 1.0 if tau >= 1 else 1.0 - 1.0 / (math.tan(math.pi * tau / 2) + 1.0),
}


def transfer_counts(block_length: int, steps: int, schedule: str = "linear") -> list[int]:
    """How many tokens of a block are committed at each of its steps (they sum to the block)."""
    fn = SCHEDULES[schedule]
    if schedule == "linear":
        base, extra = divmod(block_length, steps)
        return [base + (1 if i < extra else 0) for i in range(steps)]
    done = [round(block_length * fn(i / steps)) for i in range(steps + 1)]
    done[-1] = block_length
    return [done[i + 1] - done[i] for i in range(steps)]
