"""Timings under contention: the load is read against the run's own threads (a demo of two
one-thread workers on two cores is not contended by itself), and the CPU share counts the
children a cell waits for (the code sandbox's programs are the cell's own work)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import harness.ground.machine_load as load_module
import tasks.sandbox as sandbox
from harness.ground.machine_load import (
    RUN_THREADS_ENV,
    WORKER_THREADS_ENV,
    announce_threads,
    contended,
    measure_load,
)
from reports.contention import contention_notes
from results.schema import Costs, Record


@pytest.mark.parametrize(
    ("load", "share", "run_threads", "expected"),
    [
        (3.0, 0.99, 2, False),  # two one-thread workers on 2 cores, the sandbox's blips
        (4.2, 0.99, 2, True),  # others ran more than a whole machine
        (5.9, 0.99, 4, False),  # a run of 4 threads on 2 cores: its own oversubscription
        (4.1, 0.99, None, True),  # unknown run threads: one per core
        (3.9, 0.99, None, False),
        (1.0, 0.5, 2, True),  # the cell did not get the cores it asked for
        (None, None, 2, False),
    ],
)
def test_contention_is_load_beyond_the_runs_own_threads(load, share, run_threads, expected):
    assert contended(load, share, cores=2, run_threads=run_threads) is expected


def test_cpu_share_counts_the_children_a_phase_waits_for():
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
    before = load_module._cpu_seconds()
    subprocess.run([sys.executable, "-c", busy], check=True)
    # the parent only waited; the child's 0.4 CPU seconds count (whatever the machine's load)
    assert load_module._cpu_seconds() - before >= 0.4


def test_an_executor_announces_the_threads_of_its_worker_and_of_the_run(monkeypatch):
    monkeypatch.delenv(RUN_THREADS_ENV, raising=False)
    monkeypatch.delenv(WORKER_THREADS_ENV, raising=False)
    with measure_load(threads=3) as load:
        pass
    assert load.run_threads == 3  # no executor said: this process's own
    announce_threads(1, 2)
    with measure_load(threads=1) as load:
        pass
    assert load.run_threads == 2
    announce_threads(1, None)  # a Ray actor does not know its node's other actors
    with measure_load(threads=1) as load:
        pass
    assert load.run_threads == 1


def test_the_sandbox_runs_one_program_per_thread_of_its_worker(monkeypatch):
    seen = []

    class Recording:
        def __init__(self, max_workers):
            seen.append(max_workers)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, fn, items):
            return [sandbox.ExecResult("passed", 0, 0.0, "", "") for _ in items]

    monkeypatch.setattr(sandbox, "ThreadPoolExecutor", Recording)
    monkeypatch.setattr(sandbox.os, "cpu_count", lambda: 8)
    monkeypatch.delenv(WORKER_THREADS_ENV, raising=False)
    sandbox.run_programs(["pass"] * 20)
    monkeypatch.setenv(WORKER_THREADS_ENV, "1")
    sandbox.run_programs(["pass"] * 20)
    assert seen == [8, 1]


def _record(method: str, load: float, run_threads: int | None) -> Record:
    costs = Costs(train_load_avg=load, train_cpu_share=0.99, run_threads=run_threads)
    return Record(cell_id=f"{method}-{load}", status="done", config={"method": method}, costs=costs)


def test_the_report_flags_only_load_the_run_did_not_bring(monkeypatch):
    monkeypatch.setattr(load_module.os, "cpu_count", lambda: 2)
    assert contention_notes([_record("lora", 3.1, 2), _record("nara", 5.2, 4)]) == []
    notes = contention_notes([_record("lora", 2.9, 2), _record("nara", 4.3, 2)])
    assert len(notes) == 1 and "1 of 2 cells (nara x1)" in notes[0]
    assert len(contention_notes([_record("lora", 4.3, None)])) == 1
