"""One worker process per local device (``--devices cuda:0,cuda:1`` or ``cpu,cpu``).

Each worker is a spawned process that keeps its base model loaded across cells and talks to the
driver over a pipe: a job goes in, an :class:`~harness.run.executors.pool.Outcome` comes back. A
worker that dies (segfault, SIGKILL, the kernel's OOM killer) is noticed through its process
sentinel; the pool replaces it and the queue retries its job.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import socket
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from harness.run.executors.job import Job, Placement
from harness.run.executors.pool import Outcome, WorkerDied, run_pool

EXECUTOR = "local"


def _die_with_the_driver() -> None:
    """Linux: the kernel kills this worker when the driver dies, so no orphan finishes (and
    writes) a cell whose lease another driver may take over (lease.py)."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _worker_main(conn: Connection, name: str, device: str, threads: int, run_threads: int) -> None:
    _die_with_the_driver()
    import torch

    from harness.ground.machine_load import announce_threads
    from harness.run.executors import worker
    from harness.run.executors.model_cache import BaseModelCache

    os.environ["BENCH_WORKER_DEVICE"] = device
    torch.set_num_threads(threads)
    announce_threads(threads, run_threads)
    cache = BaseModelCache()
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        placement = Placement(EXECUTOR, name, device, attempt=job.attempt)
        status, detail = worker.execute_job(job, device, None, cache, placement)
        conn.send(Outcome(status, detail, cache.holds, cache.last_load_s))


@dataclass
class ProcessWorker:
    name: str
    device: str
    process: mp.process.BaseProcess
    conn: Connection
    node: str = field(default_factory=socket.gethostname)
    holds: str | None = None

    def submit(self, job: Job) -> None:
        self.conn.send(job)


def worker_threads(devices: list[str], device: str) -> int:
    """Torch threads of a worker: CPU workers split the cores evenly (never oversubscribe); a GPU
    worker keeps half of them for its data work."""
    cpus = os.cpu_count() or 1
    n_cpu = sum(d.startswith("cpu") for d in devices) or 1
    return max(1, cpus // n_cpu) if device.startswith("cpu") else max(1, cpus // 2)


class LocalBackend:
    def __init__(self, devices: list[str]) -> None:
        self.devices = devices
        self.ctx = mp.get_context("spawn")
        self.workers: list[ProcessWorker] = []
        self.started = 0

    def _spawn(self, device: str) -> ProcessWorker:
        name = f"w{self.started}"
        self.started += 1
        threads = worker_threads(self.devices, device)
        run_threads = sum(worker_threads(self.devices, d) for d in self.devices)
        ours, theirs = self.ctx.Pipe()
        process = self.ctx.Process(
            target=_worker_main,
            args=(theirs, name, device, threads, run_threads),
            name=f"bench-{name}",
        )
        process.start()
        theirs.close()
        worker = ProcessWorker(name, device, process, ours)
        self.workers.append(worker)
        return worker

    def start(self) -> list[ProcessWorker]:
        return [self._spawn(device) for device in self.devices]

    def wait(self, busy, timeout: float):
        handles = {}
        for worker in busy:
            handles[worker.conn] = worker
            handles[worker.process.sentinel] = worker
        out, seen = [], set()
        for ready in wait(list(handles), timeout):
            worker = handles[ready]
            if worker.name in seen:
                continue
            seen.add(worker.name)
            try:
                if worker.conn.poll():
                    out.append((worker, worker.conn.recv()))
                    continue
            except (EOFError, OSError):
                pass
            worker.process.join(timeout=5)
            out.append((worker, WorkerDied(f"process exited with code {worker.process.exitcode}")))
        return out

    def replace(self, dead: ProcessWorker) -> ProcessWorker:
        dead.conn.close()
        self.workers.remove(dead)
        return self._spawn(dead.device)

    def stop(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in self.workers:
            worker.process.join(timeout=30)
            if worker.process.is_alive():
                worker.process.kill()
            worker.conn.close()
        self.workers = []


class LocalProcessExecutor:
    """One worker process per device; cells are handed out as workers free up."""

    name = EXECUTOR

    def __init__(self, devices: list[str]) -> None:
        self.devices = devices

    def workers(self) -> list[tuple[str, str, str]]:
        return [(f"w{i}", d, socket.gethostname()) for i, d in enumerate(self.devices)]

    def run(self, queue, listener, monitor) -> None:
        run_pool(LocalBackend(self.devices), queue, listener)


MultiGPUExecutor = LocalProcessExecutor  # its name before Ray came
