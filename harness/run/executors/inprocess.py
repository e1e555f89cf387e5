"""One cell at a time in this process, with every core (CPU; ``OMP_NUM_THREADS`` threads when
that is set) or one GPU; the base stays loaded between cells on the same model
(``model_cache.py``)."""

from __future__ import annotations

import os
import socket

from harness.ground.machine_load import env_int
from harness.run.cell import Monitor
from harness.run.executors.job import Placement
from harness.run.executors.model_cache import BaseModelCache

WORKER = "main"


def omp_threads() -> int | None:
    """``OMP_NUM_THREADS`` when set to a positive number: a user who gives a run one thread (two
    runs side by side on two cores) gets one; every core instead would oversubscribe them, and
    spinning OpenMP threads then slow both runs several times over."""
    return env_int("OMP_NUM_THREADS")


class InProcessExecutor:
    name = "in-process"

    def __init__(
        self, device: str = "auto", reuse_base: bool = True, threads: int | None = None
    ) -> None:
        self.device = device
        self.cache = BaseModelCache() if reuse_base else None
        self.threads = threads or omp_threads() or os.cpu_count() or 1

    def workers(self) -> list[tuple[str, str, str]]:
        """(name, device, node) of each worker, for the dry run's plan."""
        return [(WORKER, self.device, socket.gethostname())]

    def run(self, queue, listener, monitor: Monitor) -> None:
        import torch

        from harness.ground.machine_load import announce_threads
        from harness.run.executors import worker  # at call time: tests replace worker.run_cell

        torch.set_num_threads(self.threads)
        announce_threads(self.threads, self.threads)
        while True:
            job = queue.next(prefer_model=self.cache.holds if self.cache else None)
            if job is None:
                return
            job.worker = WORKER
            queue.started(job)
            listener("start", job, None)
            placement = Placement(self.name, WORKER, self.device, attempt=job.attempt)
            status, detail = worker.execute_job(job, self.device, monitor, self.cache, placement)
            queue.finished(job, status, detail)
            listener(status, job, detail)
