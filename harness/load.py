"""How busy the machine was while a phase was timed, so that timings can be trusted or flagged.

A time measured while other processes share the cores says little about the method (two runs on
2 cores once made NaRA's time per sampling step look 100x LoRA's). For each timed phase we
record the 1-minute load average (the larger of its values at the start and the end) and this
process's CPU share: CPU seconds used / (wall seconds x the threads it runs with). A quiet
machine gives a share near 1 and a load near the thread count.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

MIN_CPU_SHARE = 0.75  # below this the process did not get the cores it asked for
LOAD_PER_CORE = 1.5  # a load average above this many runnable threads per core is contention


@dataclass
class PhaseLoad:
    load_avg: float | None = None
    cpu_share: float | None = None
    wall_s: float = 0.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
    sample = PhaseLoad()
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


def contended(load_avg: float | None, cpu_share: float | None, cores: int | None = None) -> bool:
    """Whether a phase with these figures was timed on a busy machine."""
    cores = cores or os.cpu_count() or 1
    if cpu_share is not None and cpu_share < MIN_CPU_SHARE:
        return True
    return load_avg is not None and load_avg > LOAD_PER_CORE * cores
