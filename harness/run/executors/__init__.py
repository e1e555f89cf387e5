"""Where the cells of a grid run: the executors, and what they share.

- ``inprocess``: one cell at a time in this process (CPU, or one GPU).
- ``local``: one worker process per local device (``--devices cuda:0,cuda:1``).
- ``ray_cluster``: one Ray actor per GPU of a cluster (or per share of its CPUs).

Every executor pulls jobs from the driver's :class:`~harness.run.executors.queue.JobQueue` (leases,
retries, the journal) and runs each with ``harness.run.executors.worker.execute_job``, which writes the cell's
record. Every worker keeps its base model loaded across cells
(:class:`~harness.run.executors.model_cache.BaseModelCache`). ``pool`` is the scheduling loop the
worker-pool executors share.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.ground.errors import BenchError

EXECUTOR_NAMES = ("local", "ray")
CPU_CORES = "cpu-cores"


def resolve_devices(devices: str | None) -> str | None:
    """``cpu-cores``: a visible GPU if there is one (auto), else one CPU worker per core, each with
    one torch thread (the local backend splits the cores among its CPU workers). For the tiny
    model that is the fast way to use a CPU: its matrices are too small for a second thread to
    pay, so two cells side by side beat one cell on two threads."""
    if devices != CPU_CORES:
        return devices
    import os

    import torch

    cores = os.cpu_count() or 1
    if torch.cuda.device_count() or cores < 2:
        return "auto"
    return ",".join(["cpu"] * cores)


def _local(devices: str | None = None, **_):
    import torch

    from harness.run.executors.inprocess import InProcessExecutor
    from harness.run.executors.local import LocalProcessExecutor

    devices = resolve_devices(devices)
    if devices in (None, "auto"):
        n = torch.cuda.device_count()
        if n > 1:
            return LocalProcessExecutor([f"cuda:{i}" for i in range(n)])
        return InProcessExecutor("cuda" if n == 1 else "cpu")
    names = [d.strip() for d in devices.split(",") if d.strip()]
    if not names:
        raise BenchError("--devices is empty; valid: auto, cpu, cpu-cores, cuda:N[,cuda:M...]")
    from harness.models.loader import resolve_device

    for name in names:
        resolve_device(name)
    if len(names) == 1:
        return InProcessExecutor(names[0])
    return LocalProcessExecutor(names)


def _ray(devices: str | None = None, ray_address: str | None = None, workers: int | None = None):
    if devices not in (None, "auto"):
        raise BenchError(
            "--devices is for --executor local; with --executor ray the workers are the "
            "cluster's GPUs (or --workers N shares of its CPUs)"
        )
    from harness.run.executors.ray_cluster import RayExecutor, require_ray

    require_ray()
    return RayExecutor(address=ray_address, workers=workers)


EXECUTORS: dict[str, Callable] = {"local": _local, "ray": _ray}


def choose_executor(
    name: str | None = "local",
    devices: str | None = None,
    ray_address: str | None = None,
    workers: int | None = None,
):
    """The executor ``--executor NAME`` asks for, validated before anything runs."""
    name = name or "local"
    if name not in EXECUTORS:
        raise BenchError(f"unknown executor {name!r}; valid: {', '.join(EXECUTOR_NAMES)}")
    if workers is not None and workers <= 0:
        raise BenchError("--workers must be a positive integer")
    if name == "local":
        if ray_address is not None:
            raise BenchError("--ray-address needs --executor ray")
        if workers is not None:
            raise BenchError("--workers is for --executor ray; locally use --devices cpu,cpu,...")
        return _local(devices)
    return _ray(devices, ray_address, workers)
