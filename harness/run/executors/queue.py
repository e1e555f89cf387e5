"""The driver's queue of jobs: leases taken at dispatch, retries after a worker died, a journal.

Every executor pulls its next job from :class:`JobQueue` when a worker is free, so the rules of a
run are the same wherever cells run:

- a job is leased right before dispatch (``lease.py``) and re-planned from its record, so a cell
  another ``bench run`` finished meanwhile is skipped and one it is running is left to it;
- a free worker prefers a job on the base model it already holds (no reload);
- a job whose worker died (killed, out of host memory, node lost) goes back to the front of the
  queue, re-planned (a cell killed after saving its adapter only finishes its evaluation), up to
  ``max_attempts`` in all; then the driver records it failed with the reason;
- every dispatch and outcome is appended to ``<run>/events.jsonl`` (one JSON object per line),
  which tells afterwards which driver and worker ran each cell and how often.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from harness.run.executors.job import Job, plan_job
from harness.run.executors.lease import LeaseBook, LeaseInfo

EVENTS = "events.jsonl"
DEFAULT_MAX_ATTEMPTS = 3

Notify = Callable[[str, Job, str | None], None]


class Journal:
    """Appends one JSON line per event to ``<run>/events.jsonl`` (O_APPEND: lines never mix)."""

    def __init__(self, run_dir: Path, owner: str) -> None:
        self.path = Path(run_dir) / EVENTS
        self.owner = owner

    def write(self, event: str, job: Job, detail: str | None = None) -> None:
        row = {
            "time": round(time.time(), 3),
            "owner": self.owner[:8],
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "event": event,
            "cell": job.cell_id,
            "worker": job.worker,
            "attempt": job.attempt,
        }
        if detail:
            row["detail"] = detail.splitlines()[0][:300]
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(row) + "\n").encode())
        finally:
            os.close(fd)


def read_events(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / EVENTS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class JobQueue:
    def __init__(
        self,
        jobs: list[Job],
        run_dir: Path,
        retry_failed: bool = False,
        leases: LeaseBook | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        notify: Notify | None = None,
    ) -> None:
        self.pending = list(jobs)
        self.run_dir = Path(run_dir)
        self.retry_failed = retry_failed
        self.leases = leases
        self.max_attempts = max_attempts
        self.notify = notify or (lambda *a: None)
        self.journal = Journal(self.run_dir, leases.token if leases else "-")
        self.held: list[tuple[Job, LeaseInfo]] = []  # leased by another run, left to it
        self.skipped = 0  # found finished at dispatch
        self._held_logged: set[str] = set()

    def __len__(self) -> int:
        return len(self.pending)

    def next(self, prefer_model: str | None = None) -> Job | None:
        """The next job to run, leased and re-planned; None when nothing is left to dispatch.
        Cells another run held are tried again (its lease may be free or stale by now); when only
        cells of a dead driver are left, this waits out their leases' grace and takes them."""
        for _ in range(1000):  # a bound, in case a dead driver's lease cannot be removed
            job = self._next_from_all(prefer_model)
            wait = self._grace_left() if job is None else None
            if wait is None:
                return job
            time.sleep(wait)
        return None

    def _grace_left(self) -> float | None:
        """Seconds until the first lease of a dead driver among the held ones may be taken."""
        from harness.run.executors.lease import read_lease

        if self.leases is None:
            return None
        left = []
        for job, _ in self.held:
            info = read_lease(self.leases.path(job.cell_id))
            if info is not None and info.owner_dead():
                grace = info.grace_s(self.leases.stale_s, self.leases.death_margin_s)
                left.append(grace - info.age_s)
        return max(0.05, min(left) + 0.05) if left else None

    def _next_from_all(self, prefer_model: str | None) -> Job | None:
        job = self._next_from(self.pending, prefer_model)
        if job is not None or not self.held:
            return job
        before = {j.cell_id: info for j, info in self.held}
        retry = [j for j, _ in self.held]
        self.held = []  # _claim adds back the ones still held
        job = self._next_from(retry, prefer_model)
        self.held += [(j, before[j.cell_id]) for j in retry]  # not looked at this time
        return job

    def _next_from(self, candidates: list[Job], prefer_model: str | None) -> Job | None:
        while candidates:
            index = next((i for i, j in enumerate(candidates) if j.model == prefer_model), 0)
            job = self._claim(candidates.pop(index))
            if job is not None:
                return job
        return None

    def _claim(self, job: Job) -> Job | None:
        if self.leases is not None:
            other = self.leases.take(job.cell_id)
            if other is not None:
                self.held.append((job, other))
                if job.cell_id not in self._held_logged:
                    self._held_logged.add(job.cell_id)
                    self.journal.write("held", job, other.describe())
                return None
        fresh = plan_job(job.request, job.cell_dir, self.retry_failed)
        if fresh is None:  # another run finished it after we planned
            self._release(job)
            self.skipped += 1
            self.journal.write("skipped", job, "finished by another run")
            self.notify("skipped", job, None)
            return None
        fresh.attempt = job.attempt
        return fresh

    def started(self, job: Job) -> None:
        self.journal.write("start", job)

    def finished(self, job: Job, status: str, detail: str | None) -> None:
        self.journal.write(status, job, detail)
        self._release(job)

    def worker_died(self, job: Job, reason: str) -> tuple[str, str] | None:
        """Requeue a job whose worker died (None), or record it failed after the last attempt
        (returns ("failed", detail))."""
        self.journal.write("worker-died", job, reason)
        if job.attempt < self.max_attempts:
            retry = dataclasses.replace(job, attempt=job.attempt + 1)
            self.pending.insert(0, retry)
            return None
        detail = f"its worker died {job.attempt} times (last: {reason})"
        record_failure(job, detail)
        self.finished(job, "failed", detail)
        return "failed", detail

    def fail_remaining(self, reason: str) -> list[tuple[Job, str]]:
        """No worker is left: every job still queued is recorded failed."""
        out = []
        while self.pending:
            job = self.pending.pop(0)
            if self.leases is not None and self.leases.take(job.cell_id) is not None:
                continue
            record_failure(job, reason)
            self.finished(job, "failed", reason)
            out.append((job, reason))
        return out

    def _release(self, job: Job) -> None:
        if self.leases is not None:
            self.leases.release(job.cell_id)


def record_failure(job: Job, detail: str) -> None:
    """The driver's own failed record for a cell no worker could finish (the record the worker
    left, if any, keeps its scores and training)."""
    from results.schema import Record, utc_now
    from results.store import RECORD_NAME, read_record, write_record

    path = job.cell_dir / RECORD_NAME
    error = f"WorkerDied: {detail}"
    if path.is_file():
        record = dataclasses.replace(
            read_record(path), status="failed", error=error, finished_at=utc_now()
        )
    else:
        cell = job.request.cell
        config = {**cell.to_dict(), "rank": cell.rank}
        record = Record(cell_id=cell.cell_id, status="failed", config=config, error=error)
        record = dataclasses.replace(record, finished_at=utc_now())
    write_record(job.cell_dir, record)
