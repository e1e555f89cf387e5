"""Where a demo cell's time goes: CPU seconds per phase and per cell (run by hand).

    .venv/bin/python benchmarks/bench_demo_phases.py [--preset demo] [--threads 1]
        [--methods lora,nara] [--tasks synth_choice_unseen] [--seeds 0] [--out DIR]

Runs the preset's cells one after another in THIS process (the real ``execute_job``, records
written under ``--out``) with ``--threads`` torch threads, and splits each cell's process CPU time
(this process plus its children, i.e. the code sandbox) into phases by wrapping the functions that
do the work:

- ``load``: the model (and the adapter) loaded, the data built;
- ``train``: the optimizer steps (training minus validation);
- ``validate``: the validation loss per noise bin (every example at every bin's level);
- ``sample``: generation (the denoising loop);
- ``loglik``: Monte Carlo log-likelihood of the choices;
- ``score``: answer extraction and the code sandbox (its child processes counted);
- ``other``: the rest of the cell (record writing, the environment record, ...).

It also times what every worker process pays once before its first cell: the imports and loading
the tiny base. CPU time, not wall time, because the shared machine's wall clock says little; on a
quiet machine with one thread per cell the wall time is close to the CPU time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)

PHASES = ("load", "train", "validate", "sample", "loglik", "score", "other")


def cpu_now() -> float:
    """CPU seconds of this process and its finished children, and of the programs the sandbox's
    fork server ran for it."""
    from harness.ground.machine_load import forked_cpu_seconds

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime + forked_cpu_seconds()


class PhaseClock:
    """Accumulates CPU seconds per phase; nested phases are charged to the innermost one."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.stack: list[tuple[str, float]] = []

    def wrap(self, module, name: str, phase: str) -> None:
        original = getattr(module, name)

        def timed(*args, **kwargs):
            self.enter(phase)
            try:
                return original(*args, **kwargs)
            finally:
                self.leave()

        setattr(module, name, timed)

    def enter(self, phase: str) -> None:
        now = cpu_now()
        if self.stack:  # pause the outer phase
            outer, since = self.stack[-1]
            self.totals[outer] += now - since
        self.stack.append((phase, now))

    def leave(self) -> None:
        now = cpu_now()
        phase, since = self.stack.pop()
        self.totals[phase] += now - since
        if self.stack:
            outer, _ = self.stack[-1]
            self.stack[-1] = (outer, now)

    def take(self) -> dict[str, float]:
        out = {p: round(self.totals.get(p, 0.0), 2) for p in PHASES}
        self.totals.clear()
        return out


def install(clock: PhaseClock) -> None:
    import harness.processes.masked.evaluate as masked_evaluate
    import harness.processes.masked.objective as masked_objective
    import harness.run.cell as cell
    import tasks.evaluate as task_eval

    clock.wrap(cell, "checkout_model", "load")
    clock.wrap(cell, "training_split", "load")
    clock.wrap(masked_objective, "validation_loss", "validate")
    clock.wrap(masked_evaluate, "generate", "sample")
    clock.wrap(masked_evaluate, "estimate_loglikelihood", "loglik")
    clock.wrap(task_eval, "score_generations", "score")
    clock.wrap(task_eval, "score_loglik", "score")
    # the cell module imported it by name: wrap it there (its validation is charged apart)
    clock.wrap(cell, "train_adapter", "train")


def startup_cost(threads: int) -> dict[str, float]:
    """CPU seconds a fresh worker process spends importing the harness and loading the base."""
    code = (
        f"import resource, torch; torch.set_num_threads({threads})\n"
        "def c():\n    u = resource.getrusage(resource.RUSAGE_SELF); return u.ru_utime + u.ru_stime\n"
        "a = c(); import harness.run.cell, methods.registry, tasks.registry; b = c()\n"
        "from harness.models.loader import load_model; load_model('tiny', 'cpu'); d = c()\n"
        "print(a, b - a, d - b)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    interpreter, imports, load = (float(x) for x in out.stdout.split()[-3:])
    return {
        "interpreter_torch": round(interpreter, 2),
        "imports": round(imports, 2),
        "load": round(load, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", default=None, help="comma list: only these methods")
    parser.add_argument("--tasks", default=None, help="comma list: only these tasks")
    parser.add_argument("--seeds", default=None, help="comma list: only these seeds")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-demo-phases"))
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()

    import os

    import torch

    from harness.cli import _grid_spec
    from harness.run.cell import CellRequest
    from harness.run.executors.job import Job
    from harness.run.executors.worker import execute_job
    from harness.run.grid import make_grid, sampling_steps, sampling_variants
    from harness.run.runner import CELLS

    torch.set_num_threads(args.threads)
    spec, _ = _grid_spec(None, None, None, None, None, None, None, None, args.preset, None)
    grid = make_grid(spec)
    keep = {
        "method": set(args.methods.split(",")) if args.methods else None,
        "task": set(args.tasks.split(",")) if args.tasks else None,
        "seed": {int(s) for s in args.seeds.split(",")} if args.seeds else None,
    }
    cells = [
        c
        for c in grid.cells()
        if (keep["method"] is None or c.method in keep["method"])
        and (keep["task"] is None or c.evaluated_tasks[0] in keep["task"])
        and (keep["seed"] is None or c.seed in keep["seed"])
    ]
    print(f"load average {os.getloadavg()}, {args.threads} thread(s), {len(cells)} cells")
    start = startup_cost(args.threads)
    print("worker start-up (CPU s):", start)
    clock = PhaseClock()
    install(clock)
    rows = []
    for cell in cells:
        request = CellRequest(cell, sampling_steps(grid, cell), sampling_variants(grid, cell))
        job = Job(request, args.out / CELLS / cell.cell_id)
        wall, before = time.perf_counter(), cpu_now()
        clock.enter("other")
        status, detail = execute_job(job, "cpu")
        clock.leave()
        total = cpu_now() - before
        phases = clock.take()
        row = {
            "cell": cell.cell_id,
            "task": cell.evaluated_tasks[0],
            "status": status,
            "cpu_s": round(total, 2),
            "wall_s": round(time.perf_counter() - wall, 2),
            **phases,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        if detail:
            print("  ", detail)
    sums = {p: round(sum(r[p] for r in rows), 1) for p in ("cpu_s", *PHASES)}
    print("sum over cells (CPU s):", sums)
    print(f"load average at the end {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps({"startup": start, "cells": rows, "sums": sums}, indent=1))


if __name__ == "__main__":
    main()
