"""How busy the machine was while a phase was timed, so that timings can be trusted or flagged.

A time measured while other processes share the cores says little about the method (two runs on
2 cores once made NaRA's time per sampling step look 100x LoRA's). For each timed phase we
record the 1-minute load average (the larger of its values at the start and the end), this
process's CPU share: CPU seconds used by it and by the children it waited for (the code sandbox's
programs are the cell's own work) / (wall seconds x the threads it runs with), and the threads
the whole run puts on this host (all of its workers: ``BENCH_RUN_THREADS``, set by the
executors). A quiet machine gives a share near 1 and a load near the run's own threads; a run
of two one-thread workers on two cores is not contended by itself.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

MIN_CPU_SHARE = 0.75  # below this the process did not get the cores it asked for
# Contention is load beyond the run's own threads: more than this many other runnable threads per
# core (1.0: others ask for a whole machine's worth). The CPU share is the direct measure (another
# process that takes our cores lowers it); the load catches what it cannot see. A run's own short
# extras (the sandbox's program starts, the driver's progress view) stay below it: the demo's
# two workers on two cores peak at a load of about 3. With the run's threads unknown (records
# written before they were recorded) the run counts as one thread per core.
OTHERS_PER_CORE = 1.0
RUN_THREADS_ENV = "BENCH_RUN_THREADS"  # threads of all of this run's workers on this host
WORKER_THREADS_ENV = "BENCH_WORKER_THREADS"  # threads of this worker (its sandbox's share)


@dataclass
class PhaseLoad:
    load_avg: float | None = None
    cpu_share: float | None = None
    run_threads: int | None = None
    wall_s: float = 0.0


_forked_cpu = [0.0]  # CPU seconds of programs a helper process ran for this one (the sandbox's)
_forked_lock = threading.Lock()


def charge_child_cpu(seconds: float) -> None:
    """Count a program that a helper process ran on this process's behalf as this process's
    child: the sandbox's fork server forks the programs, so they are not our children."""
    with _forked_lock:
        _forked_cpu[0] += seconds


def forked_cpu_seconds() -> float:
    """CPU seconds of the programs helper processes ran for this process so far."""
    return _forked_cpu[0]


def _cpu_seconds() -> float:
    """This process's CPU time and that of its children it has waited for (the sandbox), the
    programs the sandbox's fork server ran for it included."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + forked_cpu_seconds()
    )


def env_int(name: str) -> int | None:
    """A positive integer from the environment variable ``name``; None when unset, empty, not a
    number, or not positive."""
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def run_threads(threads: int) -> int:
    """The threads the whole run puts on this host; this process's own when no executor said."""
    return env_int(RUN_THREADS_ENV) or threads


def worker_threads_hint() -> int | None:
    """This worker's threads, as its executor set them (None outside an executor's worker)."""
    return env_int(WORKER_THREADS_ENV)


def announce_threads(worker: int, run: int | None) -> None:
    """Called by an executor in each worker: its own threads and the run's on this host."""
    os.environ[WORKER_THREADS_ENV] = str(worker)
    if run is not None:
        os.environ[RUN_THREADS_ENV] = str(run)
    else:
        os.environ.pop(RUN_THREADS_ENV, None)


def _load_avg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return None


@contextmanager
def measure_load(threads: int | None = None) -> Iterator[PhaseLoad]:
    """Fill the yielded :class:`PhaseLoad` when the block ends."""
    import torch

    threads = threads or torch.get_num_threads()
    sample = PhaseLoad(run_threads=run_threads(threads))
    load_start, cpu_start, wall_start = _load_avg(), _cpu_seconds(), time.perf_counter()
    try:
        yield sample
    finally:
        sample.wall_s = time.perf_counter() - wall_start
        load_end = _load_avg()
        loads = [x for x in (load_start, load_end) if x is not None]
        sample.load_avg = round(max(loads), 2) if loads else None
        if sample.wall_s > 0:
            share = (_cpu_seconds() - cpu_start) / (sample.wall_s * max(1, threads))
            sample.cpu_share = round(share, 3)


def load_limit(cores: int, run_threads: int | None) -> float:
    """The load average above which a phase counts as contended."""
    return (run_threads if run_threads is not None else cores) + OTHERS_PER_CORE * cores


def contended(
    load_avg: float | None,
    cpu_share: float | None,
    cores: int | None = None,
    run_threads: int | None = None,
) -> bool:
    """Whether a phase with these figures was timed on a busy machine: this process did not get
    its cores, or others asked for more than a whole machine beyond the run's own threads."""
    cores = cores or os.cpu_count() or 1
    if cpu_share is not None and cpu_share < MIN_CPU_SHARE:
        return True
    return load_avg is not None and load_avg > load_limit(cores, run_threads)
