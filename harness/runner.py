"""Runs a grid: every cell once, resumable after a crash, one failing cell never stops the rest.

Layout of a run folder::

    <out>/grid.yaml                     the grid as given (reports read its preset section)
    <out>/cells/<cell_id>/record.json   written atomically: "running", then "done" or "failed"
    <out>/cells/<cell_id>/adapter/      the trained adapter (peft folder)
    <out>/cells/<cell_id>/predictions*.jsonl, log.txt

A cell whose record says "done" is skipped on a rerun (or only its saved adapter is evaluated on
the tasks and sampling step counts it lacks); "failed" is skipped unless retried; a cell killed
during training still says "running" and is redone, one killed after its adapter was saved
("running", ``config.trained``) only finishes its evaluation. Executors decide where cells run: in this
process (CPU or one GPU) or one worker process per GPU.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml

from harness.cell import CellRequest, Monitor, run_cell
from harness.errors import BenchError

log = logging.getLogger(__name__)

CELLS = "cells"


@dataclass
class Job:
    request: CellRequest
    cell_dir: Path
    extend: bool = False  # a trained cell whose saved adapter only needs evaluating

    @property
    def cell_id(self) -> str:
        return self.request.cell.cell_id


@dataclass
class RunSummary:
    total: int = 0
    skipped: int = 0
    done: int = 0
    failed: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0


Listener = Callable[[str, Job, str | None], None]  # (event, job, detail): start | done | failed


class Executor(Protocol):
    """Runs jobs somewhere and reports each start and outcome to ``listener``."""

    def run(self, jobs: list[Job], listener: Listener, monitor: Monitor) -> None: ...


def execute_job(job: Job, device: str, monitor: Monitor | None = None) -> tuple[str, str | None]:
    """Run one cell and write its record; never raises (the failure is the record)."""
    from results.schema import Record, utc_now
    from results.store import write_record

    cell = job.request.cell
    if job.extend:
        return _extend_job(job, device, monitor)
    job.cell_dir.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(job.cell_dir)
    config = {**cell.to_dict(), "rank": cell.rank}
    write_record(job.cell_dir, Record(cell_id=cell.cell_id, status="running", config=config))
    handler = logging.FileHandler(job.cell_dir / "log.txt", mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous_level = root.level
    root.setLevel(min(previous_level, logging.INFO))
    try:
        from harness.sandboxes import sandbox_cell_function

        record = (sandbox_cell_function(cell) or run_cell)(
            job.request,
            job.cell_dir,
            device,
            monitor,
            checkpoint=lambda r: write_record(job.cell_dir, r),
        )
        write_record(job.cell_dir, record)
        return "done", None
    except Exception as err:  # noqa: BLE001 - isolation is the point: record and continue
        tb = traceback.format_exc()
        log.error("cell %s failed: %s\n%s", cell.cell_id, err, tb)
        summary = f"{type(err).__name__}: {err}"
        failed = Record(
            cell_id=cell.cell_id,
            status="failed",
            config=config,
            error=summary + "\n" + tb[-4000:],
            finished_at=utc_now(),
        )
        write_record(job.cell_dir, failed)
        return "failed", summary
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()


def _remove_leftovers(cell_dir: Path) -> None:
    """Staging folders and temp files of an earlier attempt that was killed mid-write."""
    import shutil

    for path in [*cell_dir.glob("*.tmp-*"), *cell_dir.glob(".*.tmp")]:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _extend_job(job: Job, device: str, monitor: Monitor | None) -> tuple[str, str | None]:
    """Evaluate a trained cell's saved adapter on what it lacks (new step counts, new tasks, the
    rest of an interrupted evaluation). A failure keeps a finished cell's record as it was (with
    the scores added so far); an interrupted cell that fails again is recorded as failed."""
    import dataclasses

    from harness.cell import extend_cell
    from results.schema import utc_now
    from results.store import RECORD_NAME, read_record, write_record

    record = None
    try:
        record = read_record(job.cell_dir / RECORD_NAME)
        finished = extend_cell(
            job.request,
            job.cell_dir,
            record,
            device,
            monitor,
            lambda r: write_record(job.cell_dir, r),
        )
        write_record(job.cell_dir, finished)
        return "done", None
    except Exception as err:  # noqa: BLE001
        tb = traceback.format_exc()
        log.error("evaluating cell %s failed: %s\n%s", job.cell_id, err, tb)
        summary = f"{type(err).__name__}: {err}"
        if record is not None and record.status == "running":
            latest = read_record(job.cell_dir / RECORD_NAME)
            failed = dataclasses.replace(
                latest, status="failed", error=summary + "\n" + tb[-4000:], finished_at=utc_now()
            )
            write_record(job.cell_dir, failed)
        return "failed", f"evaluating the saved adapter failed: {summary}"


class InProcessExecutor:
    """One cell at a time in this process, with every core (CPU) or one GPU."""

    def __init__(self, device: str = "auto") -> None:
        self.device = device

    def run(self, jobs: list[Job], listener: Listener, monitor: Monitor) -> None:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        for job in jobs:
            listener("start", job, None)
            status, detail = execute_job(job, self.device, monitor)
            listener(status, job, detail)


_WORKER_DEVICE = "cpu"


def _init_worker(devices, cpu_threads: int | None = None) -> None:
    global _WORKER_DEVICE
    _WORKER_DEVICE = devices.get()
    os.environ["BENCH_WORKER_DEVICE"] = _WORKER_DEVICE
    if _WORKER_DEVICE == "cpu" and cpu_threads:  # CPU workers share the cores, not oversubscribe
        import torch

        torch.set_num_threads(cpu_threads)


def _worker(job: Job) -> tuple[str, str | None]:
    return execute_job(job, _WORKER_DEVICE)


class MultiGPUExecutor:
    """One worker process per GPU; cells are handed out as workers free up."""

    def __init__(self, devices: list[str]) -> None:
        self.devices = devices

    def run(self, jobs: list[Job], listener: Listener, monitor: Monitor) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        queue = ctx.Manager().Queue()
        for device in self.devices:
            queue.put(device)
        init_args = (queue, cpu_worker_threads(self.devices))
        with ProcessPoolExecutor(len(self.devices), ctx, _init_worker, init_args) as pool:
            futures = {}
            for job in jobs:
                listener("start", job, None)
                futures[pool.submit(_worker, job)] = job
            for future in as_completed(futures):
                job = futures[future]
                try:
                    status, detail = future.result()
                except Exception as err:  # a worker died (segfault, OOM kill): isolate it
                    status, detail = "failed", f"worker crashed: {err}"
                listener(status, job, detail)


# --- CPU workers: one per core (the only change above: _init_worker sets their threads) -----
CPU_CORES = "cpu-cores"


def cpu_worker_threads(devices: list[str]) -> int | None:
    """Torch threads per CPU worker: the cores split evenly among them (None: no CPU worker)."""
    n = devices.count("cpu")
    return max(1, (os.cpu_count() or 1) // n) if n else None


def resolve_devices(devices: str | None) -> str | None:
    """``cpu-cores``: a visible GPU if there is one (auto), else one CPU worker per core with one
    torch thread each. For the tiny model that is the fast way to use a CPU: its matrices are too
    small for two threads to pay, so two cells side by side beat one cell on two threads."""
    if devices != CPU_CORES:
        return devices
    import torch

    cores = os.cpu_count() or 1
    if torch.cuda.device_count() or cores < 2:
        return "auto"
    return ",".join(["cpu"] * cores)


def choose_executor(devices: str | None) -> Executor:
    """``--devices``: auto (every visible GPU, else the CPU), cpu, cpu-cores (one CPU worker per
    core), or a list like cuda:0,cuda:1 or cpu,cpu."""
    import torch

    devices = resolve_devices(devices)
    if devices in (None, "auto"):
        n = torch.cuda.device_count()
        if n > 1:
            return MultiGPUExecutor([f"cuda:{i}" for i in range(n)])
        return InProcessExecutor("cuda" if n == 1 else "cpu")
    names = [d.strip() for d in devices.split(",") if d.strip()]
    if not names:
        raise BenchError("--devices is empty; valid: auto, cpu, cpu-cores, cuda:N[,cuda:M...]")
    from harness.models.loader import resolve_device

    for name in names:
        resolve_device(name)
    if len(names) == 1:
        return InProcessExecutor(names[0])
    return MultiGPUExecutor(names)


def plan_jobs(requests: list[CellRequest], out: Path, retry_failed: bool) -> tuple[list[Job], int]:
    """Jobs still to run, and how many cells are skipped because they already finished."""
    from harness.cell import missing_evaluations, resumable
    from results.store import RECORD_NAME, read_record

    jobs, skipped = [], 0
    seen = set()
    for request in requests:
        cell_id = request.cell.cell_id
        if cell_id in seen:
            continue
        seen.add(cell_id)
        cell_dir = out / CELLS / cell_id
        path = cell_dir / RECORD_NAME
        if path.is_file():
            record = read_record(path)
            if record.status == "done" and missing_evaluations(request, record):
                jobs.append(Job(request, cell_dir, extend=True))
                continue
            if resumable(record, cell_dir):  # killed after training: evaluate what is missing
                jobs.append(Job(request, cell_dir, extend=True))
                continue
            if record.status == "done" or (record.status == "failed" and not retry_failed):
                skipped += 1
                continue
        jobs.append(Job(request, cell_dir))
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
        listener(event, job, detail)

    executor.run(jobs, on_event, monitor)
    summary.wall_time_s = time.perf_counter() - start
    return summary
