"""A job (one cell to run, or a trained cell to finish evaluating) and how it is planned from the
run folder: the same rule at the start of a run and again right before the job is dispatched,
since another ``bench run`` on the same folder may have finished the cell in between."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cell import CellRequest


@dataclass
class Job:
    request: CellRequest
    cell_dir: Path
    extend: bool = False  # a trained cell whose saved adapter only needs evaluating
    worker: str | None = None  # the worker it was last handed to (set by the executor)
    attempt: int = 1  # 2, 3, ... after its worker died mid-cell

    @property
    def cell_id(self) -> str:
        return self.request.cell.cell_id

    @property
    def model(self) -> str:
        return self.request.cell.model


def plan_job(request: CellRequest, cell_dir: Path, retry_failed: bool) -> Job | None:
    """The job ``request`` still needs given its record on disk, or None when it is finished
    (done with every evaluation asked for, or failed and not retried)."""
    from harness.cell import missing_evaluations, resumable
    from results.store import RECORD_NAME, read_record

    path = cell_dir / RECORD_NAME
    if path.is_file():
        record = read_record(path)
        if record.status == "done" and missing_evaluations(request, record):
            return Job(request, cell_dir, extend=True)
        if resumable(record, cell_dir):  # killed after training: evaluate what is missing
            return Job(request, cell_dir, extend=True)
        if record.status == "done" or (record.status == "failed" and not retry_failed):
            return None
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
