"""Runs a grid: every cell once, resumable after a crash, one failing cell never stops the rest.

Layout of a run folder::

    <out>/grid.yaml                     the grid as given (reports read its preset section)
    <out>/cells/<cell_id>/record.json   written atomically: "running", then "done" or "failed"
    <out>/cells/<cell_id>/adapter/      the trained adapter (peft folder)
    <out>/cells/<cell_id>/predictions*.jsonl, log.txt

A cell whose record says "done" is skipped on a rerun (or only its saved adapter is evaluated on
the tasks and sampling step counts it lacks); "failed" is skipped unless retried; a cell killed
during training still says "running" and is redone. One killed or failed after its adapter was
saved (``config.trained``; a failed record keeps its training) only finishes its evaluation,
when retried for a failed one, provided the adapter's stamp matches the cell, its base and its
files (``harness/run/adapter_stamp.py``; ``config.adapter_reused`` records it); otherwise it is
retrained and ``config.adapter_retrained`` says why. Executors (``harness/run/executors/``)
decide where cells run: in this process, one worker process per local device, or one Ray actor
per GPU of a cluster. Whichever runs them, the driver (this module) plans the jobs, leases each
cell right before it is dispatched (two runs on one folder never run the same cell) and writes
``<out>/events.jsonl``; the worker writes the cell's files, so on a cluster the run folder must
be on storage every node mounts at the same path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml

from harness.run.cell import CellRequest, Monitor
from harness.run.executors.job import Job, plan_job
from harness.run.stale import forget_scored_sets

log = logging.getLogger(__name__)

CELLS = "cells"


@dataclass
class RunSummary:
    total: int = 0
    skipped: int = 0
    done: int = 0
    failed: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0
    held: list[str] = field(default_factory=list)  # cells another run on this folder is running


# (event, job, detail): start | done | failed | retry (its worker died) | skipped (finished
# by another run meanwhile)
Listener = Callable[[str, Job, str | None], None]


class Executor(Protocol):
    """Runs the queue's jobs somewhere, pulling the next one whenever a worker is free, and
    reports each start and outcome to ``listener`` (``harness/run/executors/``)."""

    def run(self, queue, listener: Listener, monitor: Monitor) -> None: ...


def plan_jobs(requests: list[CellRequest], out: Path, retry_failed: bool) -> tuple[list[Job], int]:
    """Jobs still to run, and how many cells are skipped because they already finished (and
    were scored on the examples their tasks have now: harness/run/stale.py)."""
    forget_scored_sets()  # the task data may have changed since the last plan in this process
    jobs, skipped = [], 0
    seen = set()
    for request in requests:
        cell_id = request.cell.cell_id
        if cell_id in seen:
            continue
        seen.add(cell_id)
        job = plan_job(request, out / CELLS / cell_id, retry_failed)
        if job is None:
            skipped += 1
        else:
            jobs.append(job)
    return jobs, skipped


def run_grid(
    requests: list[CellRequest],
    out: Path,
    grid_spec: dict,
    executor: Executor,
    retry_failed: bool = False,
    monitor_factory: Callable[[int], tuple[Listener, Monitor]] | None = None,
) -> RunSummary:
    """Run every cell not yet finished in ``out``; returns counts (failed cells listed)."""
    from harness.run.executors.lease import LeaseBook
    from harness.run.executors.queue import JobQueue
    from results.store import atomic_write_text, check_schema_compatible

    out = Path(out)
    if out.exists():
        check_schema_compatible(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "grid.yaml", yaml.safe_dump(grid_spec, sort_keys=False))
    jobs, skipped = plan_jobs(requests, out, retry_failed)
    summary = RunSummary(total=len(jobs) + skipped, skipped=skipped)
    listener, monitor = (monitor_factory or (lambda n: (lambda *a: None, Monitor())))(len(jobs))
    start = time.perf_counter()

    def on_event(event: str, job: Job, detail: str | None) -> None:
        if event == "done":
            summary.done += 1
        elif event == "failed":
            summary.failed.append(f"{job.cell_id}: {detail}")
        elif event == "skipped":
            summary.skipped += 1
        listener(event, job, detail)

    leases = LeaseBook(out).start()
    try:
        queue = JobQueue(jobs, out, retry_failed, leases, notify=on_event)
        executor.run(queue, on_event, monitor)
        leases.sweep()
    finally:
        leases.close()
    summary.held = [f"{job.cell_id}: {info.describe()}" for job, info in queue.held]
    summary.wall_time_s = time.perf_counter() - start
    return summary
