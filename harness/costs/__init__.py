"""Cost of a cell before it runs: tokens, GPU-hours on a device kind and peak memory (real
models), and the check that stops a cell that cannot fit its device before it starts."""

from __future__ import annotations

import logging
import os

from harness.config.cell import CellConfig, is_tiny
from harness.costs.architecture import Architecture, architecture_for
from harness.costs.devices import DeviceKind, cpu_kind, planning_device, visible_device
from harness.costs.estimate import CellCost, cell_cost, fit_problem
from harness.ground.errors import BenchError

log = logging.getLogger(__name__)
NO_FIT_CHECK_ENV = "BENCH_NO_FIT_CHECK"

__all__ = [
    "Architecture",
    "CellCost",
    "DeviceKind",
    "architecture_for",
    "cell_cost",
    "check_fits",
    "estimate_real",
    "fit_problem",
    "planning_device",
]


def estimate_real(
    cell: CellConfig, steps: list[int], device: DeviceKind, eval_tasks: list[str] | None = None
) -> CellCost | None:
    """The cost of a real-model cell on ``device``; None for the tiny model (plan.py times it
    from measured rates)."""
    if is_tiny(cell.model):
        return None
    return cell_cost(cell, steps, device, architecture_for(cell.model), eval_tasks)


def check_fits(cell: CellConfig, device: str = "auto", steps: list[int] | None = None) -> None:
    """Raise one BenchError line when ``cell`` would not fit the device it is about to run on.

    The estimate errs on the large side; ``BENCH_NO_FIT_CHECK=1`` runs the cell anyway."""
    if is_tiny(cell.model) or os.environ.get(NO_FIT_CHECK_ENV) == "1":
        return
    try:
        arch = architecture_for(cell.model)
    except BenchError as err:  # e.g. a folder whose config gives no sizes: nothing to check
        log.warning("memory check skipped: %s", err)
        return
    kind = visible_device(device) or cpu_kind()
    cost = cell_cost(cell, steps or [], kind, arch)
    problem = fit_problem(cost, cell)
    if problem:
        raise BenchError(
            f"{problem} (checked before loading the model; {NO_FIT_CHECK_ENV}=1 runs it anyway)"
        )
