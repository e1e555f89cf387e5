"""A job (one cell to run, or a trained cell to finish evaluating) and how it is planned from the
run folder: the same rule at the start of a run and again right before the job is dispatched,
since another ``bench run`` on the same folder may have finished the cell in between."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.run.cell import CellRequest


@dataclass
class Job:
    request: CellRequest
    cell_dir: Path
    extend: bool = False  # a trained cell whose saved adapter only needs evaluating
    worker: str | None = None  # the worker it was last handed to (set by the executor)
    attempt: int = 1  # 2, 3, ... after its worker died mid-cell
    # An unfinished cell (record "running" or "failed") whose saved adapter is reused: its status
    # then. Set with extend=True; the adapter's stamp is checked again when the job runs.
    reuse: str | None = None
    # Why an unfinished cell with a saved adapter is retrained instead (recorded in the cell).
    retrain_reason: str | None = None
    # A finished cell's tasks scored on examples the task no longer has: {task: (recorded hash,
    # current hash)}, found by the planner (harness/run/stale.py); set with extend=True.
    stale: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def cell_id(self) -> str:
        return self.request.cell.cell_id

    @property
    def model(self) -> str:
        return self.request.cell.model


def plan_job(request: CellRequest, cell_dir: Path, retry_failed: bool) -> Job | None:
    """The job ``request`` still needs given its record on disk, or None when it is finished
    (done with every evaluation asked for, or failed and not retried).

    A cell killed or failed after its adapter was saved reuses that adapter (it only finishes
    its evaluation) when the adapter's stamp matches the cell (harness/run/adapter_stamp.py);
    otherwise it is retrained and the reason is kept with the job."""
    from harness.run.cell import missing_evaluations, resumable, saved_adapter_problem
    from harness.run.stale import stale_tasks
    from results.store import RECORD_NAME, read_record

    path = cell_dir / RECORD_NAME
    if not path.is_file():
        return Job(request, cell_dir)
    record = read_record(path)
    if record.status == "done":
        stale = stale_tasks(request, record)  # scored on examples the task no longer has
        if stale or missing_evaluations(request, record):
            return Job(request, cell_dir, extend=True, stale=stale)
        return None
    if record.status == "failed" and not retry_failed:
        return None
    if resumable(record, cell_dir):  # trained before it was killed or failed
        problem = saved_adapter_problem(request, record, cell_dir)
        if problem is None:
            return Job(request, cell_dir, extend=True, reuse=record.status)
        return Job(request, cell_dir, retrain_reason=problem)
    return Job(request, cell_dir)


@dataclass(frozen=True)
class Placement:
    """Where a cell ran; stamped into ``record.environment.placement``."""

    executor: str
    worker: str
    device: str
    node: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    attempt: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "executor": self.executor,
            "worker": self.worker,
            "node": self.node,
            "pid": self.pid,
            "device": self.device,
            "attempt": self.attempt,
        }
        return {**out, **self.extra}
