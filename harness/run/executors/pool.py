"""The scheduling loop shared by the worker-pool executors (local processes, Ray actors).

The driver keeps at most one job in flight per worker. A free worker takes the next job from the
queue, preferring one on the base it already holds. A worker that dies mid-cell is replaced by a
new worker (with a new name, so the retry runs on another worker) and its job goes back to the
queue; the queue decides when a job has had enough attempts. The backend (``local.py``,
``ray_cluster.py``) only knows how to start, feed, wait on and replace its workers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from harness.run.executors.job import Job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What a worker sends back for a job (never the model, never the record)."""

    status: str  # done | failed
    detail: str | None
    holds: str | None  # the base model the worker holds now
    load_s: float | None  # seconds this job spent loading it (0.0: reused)


@dataclass(frozen=True)
class WorkerDied:
    reason: str


class Worker(Protocol):
    name: str
    device: str
    node: str
    holds: str | None

    def submit(self, job: Job) -> None: ...


class Backend(Protocol):
    def start(self) -> list[Worker]: ...

    def wait(self, busy: list[Worker], timeout: float) -> list[tuple[Worker, Outcome | WorkerDied]]:
        """Block up to ``timeout`` s; the workers that finished or died, with what happened."""

    def replace(self, dead: Worker) -> Worker | None: ...

    def stop(self) -> None: ...


def run_pool(backend: Backend, queue, listener) -> None:
    """Run every job of ``queue`` on ``backend``'s workers (see the module docstring)."""
    idle = list(backend.start())
    busy: dict[str, tuple[Worker, Job]] = {}
    try:
        while True:
            while idle:
                job = queue.next(prefer_model=idle[0].holds)
                if job is None:
                    break
                worker = idle.pop(0)
                job.worker = worker.name
                queue.started(job)
                listener("start", job, None)
                worker.submit(job)
                busy[worker.name] = (worker, job)
            if not busy:
                if idle or not len(queue):
                    return
                for job, reason in queue.fail_remaining("no worker is left to run it"):
                    listener("failed", job, reason)
                return
            for worker, result in backend.wait([w for w, _ in busy.values()], timeout=1.0):
                _, job = busy.pop(worker.name)
                if isinstance(result, WorkerDied):
                    log.error("worker %s died running %s: %s", worker.name, job.cell_id, result)
                    final = queue.worker_died(job, result.reason)
                    if final is None:
                        listener("retry", job, f"worker {worker.name} died: {result.reason}")
                    else:
                        listener(final[0], job, final[1])
                    new = backend.replace(worker)
                    if new is not None:
                        idle.append(new)
                    continue
                worker.holds = result.holds
                queue.finished(job, result.status, result.detail)
                listener(result.status, job, result.detail)
                idle.append(worker)
    finally:
        backend.stop()
