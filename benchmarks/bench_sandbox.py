"""The code sandbox's cost per program: a fork server against a fresh interpreter per program.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_sandbox.py [--n 500] [--workers 2]
        [--task synth_code_slice] [--repeats 2]

Runs the first ``--n`` test examples of a synthetic code family with their reference answers
(``spec.program(example, example.target)``, as scoring builds them) through
:func:`tasks.sandbox.run_programs` with each way of starting a program (``Limits.start``),
interleaved in each repeat, and prints per start: wall seconds, CPU seconds (this process, its
waited-for children and the programs the fork server ran for it) per program, and how many
passed (all of them must: a start that changes what a program sees is wrong, not fast). The
load average is printed before and after. ``make demo`` scores about 3,500 such programs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from harness.ground import machine_load
from tasks.registry import get_task
from tasks.sandbox import Limits, run_programs
from tasks.synthetic_tasks import make_split

STARTS = ("interpreter", "fork-server")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--task", default="synth_code_slice")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    spec = get_task(args.task)
    examples = make_split(args.task, "test", args.n, seed=0)
    programs = [spec.program(ex, ex.target) for ex in examples]
    print(f"{len(programs)} programs of {args.task}, {args.workers} workers, load {_load()}")
    run_programs(programs[:4], Limits(start="fork-server"), args.workers)  # the server is up
    wall = {s: [] for s in STARTS}
    cpu = {s: [] for s in STARTS}
    passed = {}
    for _ in range(args.repeats):
        for start in STARTS:
            c0, t0 = machine_load._cpu_seconds(), time.perf_counter()
            results = run_programs(programs, Limits(start=start), args.workers)
            wall[start].append(time.perf_counter() - t0)
            cpu[start].append(machine_load._cpu_seconds() - c0)
            passed[start] = sum(r.passed for r in results)
    for start in STARTS:
        w, c = statistics.median(wall[start]), statistics.median(cpu[start])
        print(
            f"  {start:12s} {w:6.1f} s wall  {1000 * c / len(programs):5.1f} ms CPU/program  "
            f"{1000 * w * args.workers / len(programs):5.1f} ms wall x workers/program  "
            f"passed {passed[start]}/{len(programs)}"
        )
    print(f"load {_load()}")


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
