"""Rough cost of a cell before it runs (for ``bench run --dry-run``).

For the tiny model, the time is token counts times per-token rates measured on the 2-core
development machine (demo grid and the gsm8k/arc grid of the README); expect +-50%. For real
models only the work itself is counted, since speed depends on the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.cell import CellRequest
from harness.config import is_tiny

SYNTHETIC_TOKENS = 50  # typical prompt + answer length of the synthetic suites, in characters
TRAIN_SECONDS_PER_TOKEN = 1.5e-4  # forward + backward + optimizer, batch of 16-32
FORWARD_SECONDS_PER_TOKEN = 3e-5  # one sampling or likelihood forward, batched
CELL_OVERHEAD_SECONDS = 3.0


@dataclass(frozen=True)
class Cost:
    updates: int
    train_examples: int  # examples seen in training (updates x batch x accumulation)
    seconds: float | None

    @property
    def label(self) -> str:
        if self.seconds is None:
            return f"{self.train_examples:,} train ex."
        return f"~{self.seconds:.0f} s"


def estimate(request: CellRequest) -> Cost:
    cell = request.cell
    train = cell.train
    if train.steps is not None:
        updates = train.steps
    else:
        n = train.train_limit or 1000
        updates = max(1, round(train.epochs * n / (train.batch_size * train.grad_accum)))
    seen = updates * train.batch_size * train.grad_accum
    if not is_tiny(cell.model):
        return Cost(updates, seen, None)
    synthetic = cell.task.startswith("synth_")
    tokens = SYNTHETIC_TOKENS if synthetic else train.max_length
    n_eval = cell.eval.limit or 200
    if cell.eval.protocol == "loglik":
        forwards = n_eval * 4 * cell.eval.mc_num  # about four choices per example
        evaluation = forwards * tokens * FORWARD_SECONDS_PER_TOKEN
    else:
        sequence = tokens + cell.eval.gen_length
        # every sampler variant counted at the plain cost: an upper bound for the fast ones
        evaluation = n_eval * sum(request.steps) * len(request.variants()) * sequence
        evaluation *= FORWARD_SECONDS_PER_TOKEN
    training = seen * tokens * TRAIN_SECONDS_PER_TOKEN
    return Cost(updates, seen, CELL_OVERHEAD_SECONDS + training + evaluation)
