"""Cost of a cell before it runs (for ``bench run --dry-run``).

For the tiny model, the time is token counts times per-token rates measured on the 2-core
development machine (demo grid and the gsm8k/arc grid of the README); expect +-50%. For real
models, tokens, GPU-hours on a device kind and peak memory come from :mod:`harness.costs`
(FLOPs from the architecture over an assumed utilisation; the derivation is written there).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.cell import CellRequest
from harness.config import is_tiny
from harness.costs import CellCost, DeviceKind, estimate_real, fit_problem
from harness.costs.estimate import gib

SYNTHETIC_TOKENS = 50  # typical prompt + answer length of the synthetic suites, in characters
TRAIN_SECONDS_PER_TOKEN = 1.5e-4  # forward + backward + optimizer, batch of 16-32
FORWARD_SECONDS_PER_TOKEN = 3e-5  # one sampling or likelihood forward, batched
CELL_OVERHEAD_SECONDS = 3.0


@dataclass(frozen=True)
class Cost:
    updates: int | None  # None: the training set's size is not known before loading it
    train_examples: int | None  # examples seen in training (updates x batch x accumulation)
    seconds: float | None  # tiny model: wall seconds on the development CPU
    train_tokens: int | None = None
    eval_tokens: int | None = None
    real: CellCost | None = None  # real models: GPU-hours and memory on a device kind
    problem: str | None = None  # why the cell cannot fit its device, if it cannot

    @property
    def label(self) -> str:
        if self.real is not None:
            hours = self.real.gpu_hours
            return "? (train size unknown)" if hours is None else f"{hours:.1f} GPU-h"
        if self.seconds is None:
            return f"{self.train_examples:,} train ex."
        return f"~{self.seconds:.0f} s"

    @property
    def memory_label(self) -> str:
        if self.real is None:
            return "-"
        m = self.real.memory
        return f"{gib(m.peak(False))} / GC {gib(m.peak(True))}"

    @property
    def fits_label(self) -> str:
        if self.real is None:
            return "-"
        return "yes" if self.problem is None else "NO"


def _count(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def token_labels(cost: Cost) -> tuple[str, str]:
    return _count(cost.train_tokens), _count(cost.eval_tokens)


def estimate(request: CellRequest, device: DeviceKind | None = None) -> Cost:
    """The cell's cost; real models are costed on ``device`` (see harness.costs.planning_device)."""
    from harness.sandboxes import sandbox_of
    from methods.registry import get_method

    cell = request.cell
    sandbox = sandbox_of(cell.model)
    if sandbox is not None:  # its own cost model (harness/sandboxes.py)
        return sandbox.load("estimate")(request)
    if not is_tiny(cell.model):
        from harness.costs import planning_device

        real = estimate_real(cell, request.steps, device or planning_device())
        assert real is not None
        return Cost(
            real.updates,
            real.train_examples,
            real.seconds,
            real.train_tokens,
            real.eval_tokens,
            real,
            fit_problem(real, cell),
        )
    train = cell.train
    if not get_method(cell.method).trains:
        updates = 0  # the base model is only evaluated
    elif train.steps is not None:
        updates = train.steps
    else:
        n = train.train_limit or 1000
        updates = max(1, round(train.epochs * n / (train.batch_size * train.grad_accum)))
    seen = updates * train.batch_size * train.grad_accum
    synthetic = cell.task.startswith("synth_")
    tokens = SYNTHETIC_TOKENS if synthetic else train.max_length
    n_eval = (cell.eval.limit or 200) * len(cell.evaluated_tasks)
    if cell.eval.protocol == "loglik":
        forwards = n_eval * 4 * cell.eval.mc_num  # about four choices per example
        eval_tokens = forwards * tokens
    else:
        sequence = tokens + cell.eval.gen_length
        # every sampler variant counted at the plain cost: an upper bound for the fast ones
        eval_tokens = n_eval * sum(request.steps) * len(request.variants()) * sequence
    evaluation = eval_tokens * FORWARD_SECONDS_PER_TOKEN
    training = seen * tokens * TRAIN_SECONDS_PER_TOKEN
    seconds = CELL_OVERHEAD_SECONDS + training + evaluation
    return Cost(updates, seen, seconds, seen * tokens, eval_tokens)
