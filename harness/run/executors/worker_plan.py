"""The dry run's plan per worker: the same dispatch rule as a run, simulated on estimated costs.

A run hands the next cell to whichever worker frees first, preferring a cell on the base that
worker already holds. The plan replays that rule with the dry run's cost estimates
(``harness/run/cell_cost.py``), so it shows how many cells and base loads each worker should get; a real
run differs where the estimates do.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WorkerPlan:
    worker: str
    device: str
    node: str
    cells: list[str] = field(default_factory=list)
    loads: int = 0
    seconds: float = 0.0
    holds: str | None = None

    @property
    def time_label(self) -> str:
        if self.seconds >= 3600:
            return f"~{self.seconds / 3600:.1f} h"
        return f"~{self.seconds / 60:.1f} min" if self.seconds >= 60 else f"~{self.seconds:.0f} s"


@dataclass
class Plan:
    rows: list[WorkerPlan]
    note: str


def plan_workers(requests, executor, device_kind: str | None = None) -> Plan:
    from harness.config.cell import is_tiny
    from harness.run.cell_cost import estimate

    device = None
    if any(not is_tiny(r.cell.model) for r in requests):
        from harness.costs import planning_device

        device = planning_device(device_kind)
    rows = [WorkerPlan(name, dev, node) for name, dev, node in executor.workers()]
    pending = list(requests)
    while pending:
        row = min(rows, key=lambda r: r.seconds)
        index = next((i for i, r in enumerate(pending) if r.cell.model == row.holds), 0)
        request = pending.pop(index)
        if request.cell.model != row.holds:
            row.loads += 1
            row.holds = request.cell.model
        row.cells.append(request.cell.cell_id)
        row.seconds += estimate(request, device).seconds or 0.0
    note = "expected: cells go to whichever worker frees first, on the base it holds if it can"
    return Plan(rows, note)
