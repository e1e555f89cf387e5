"""The runner's executors side by side, and what keeping the base loaded saves.

Run by hand:  .venv/bin/python benchmarks/bench_runner.py [--no-ray] [--d-model 256 --layers 4]

1. The same 8-cell tiny grid (lora, nara x synth_math, synth_choice x seeds 0, 1) in ONE process,
   one after the other: the in-process executor (all cores) loading the base for every cell (the
   behaviour before reuse) and keeping it loaded; then the like-for-like pair, the local
   executor with 2 worker processes of 1 core each and Ray with 2 workers of 1 core each on a
   local 127.0.0.1 instance. Per run: wall time, seconds spent loading models (from the
   records' ``costs.model_load_s``), training + evaluation seconds.
2. The reuse saving at realistic scale, simulated: the load time of a local model folder (a
   random-weight LLaDA built from the released code, tests/released_models.py, at a moderate
   size, and at half that) is measured, then model-load seconds for a 36-cell grid on 8 workers
   are computed without reuse (every cell loads) and with it (every worker loads once), and
   extrapolated to an 8B bf16 checkpoint with a fixed + per-byte fit of the two sizes.

The tiny base must already be cached (`bench pretrain`). Timings on a shared machine are noisy:
the load average is printed with every number.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = {
    "model": "tiny",
    "methods": ["lora", "nara"],
    "tasks": ["synth_math", "synth_choice"],
    "seeds": [0, 1],
    "set": {"train.steps": [8], "train.val_examples": [8], "train.val_every": [4]},
    "steps": [4],
    "limit": 8,
}


def load_avg() -> str:
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_grid_once(label: str, executor, out: Path) -> dict:
    from harness.run.cell import CellRequest
    from harness.run.grid import make_grid, sampling_steps
    from harness.run.runner import run_grid
    from results.store import load_records

    grid = make_grid(SPEC)
    requests = [CellRequest(c, sampling_steps(grid, c)) for c in grid.cells()]
    before = load_avg()
    cpu0 = time.process_time()
    start = time.perf_counter()
    summary = run_grid(requests, out, {"name": label}, executor)
    wall = time.perf_counter() - start
    records = [r for r in load_records([out]) if r.status == "done"]
    return {
        "label": label,
        "cells": summary.done,
        "failed": len(summary.failed),
        "wall_s": wall,
        "driver_cpu_s": time.process_time() - cpu0,
        "load_s": sum(r.costs.model_load_s or 0.0 for r in records),
        "loads": sum(1 for r in records if (r.costs.model_load_s or 0.0) > 0),
        "work_s": sum((r.costs.train_time_s or 0) + (r.costs.eval_time_s or 0) for r in records),
        "load_avg": f"{before} -> {load_avg()}",
    }


def executors_side_by_side(with_ray: bool, only: list[str]) -> None:
    import torch

    from harness.processes.masked.pretrain import ensure_tiny_base
    from harness.run.executors.inprocess import InProcessExecutor
    from harness.run.executors.local import LocalProcessExecutor

    ensure_tiny_base()
    root = Path(tempfile.mkdtemp(prefix="bench-runner-"))
    runs = [
        ("in-process, load per cell", lambda: InProcessExecutor("cpu", reuse_base=False)),
        ("in-process, base kept", lambda: InProcessExecutor("cpu")),
        ("local processes, 2 workers x 1 core", lambda: LocalProcessExecutor(["cpu", "cpu"])),
    ]
    rows = []
    for i, (label, make) in enumerate(runs):
        if not only or any(word in label for word in only):
            rows.append(run_grid_once(label, make(), root / f"run{i}"))
    if with_ray:
        import ray

        from harness.run.executors.ray_cluster import RayExecutor, start_local_ray

        start = time.perf_counter()
        start_local_ray(num_cpus=2, num_gpus=0)
        ray_start = time.perf_counter() - start
        try:
            row = run_grid_once("ray, 2 workers x 1 core", RayExecutor(workers=2), root / "ray")
            row["label"] += f" (+{ray_start:.1f} s Ray start)"
            rows.append(row)
        finally:
            ray.shutdown()
    print(f"\n8-cell tiny grid, torch threads in-process: {torch.get_num_threads()}")
    print("| executor | cells | wall s | model loads | load s | train+eval s | load average |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['label']} | {r['cells']} ({r['failed']} failed) | {r['wall_s']:.1f} | "
            f"{r['loads']} | {r['load_s']:.2f} | {r['work_s']:.1f} | {r['load_avg']} |"
        )


def _llada_load_time(d_model: int, layers: int) -> tuple[int, float, float]:
    """(bytes on disk, first load s, median of 3 later loads s) of a random-weight LLaDA."""
    from harness.models.loader import load_model
    from tests.released_models import build_llada

    folder = build_llada(
        Path(tempfile.mkdtemp(prefix="bench-llada-")),
        d_model=d_model,
        n_layers=layers,
        n_heads=max(2, d_model // 64),
        n_kv_heads=max(2, d_model // 64),
        mlp_hidden_size=int(d_model * 8 / 3) // 16 * 16,
    )
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    times = []
    for _ in range(4):
        start = time.perf_counter()
        dlm = load_model(str(folder), "cpu")
        times.append(time.perf_counter() - start)
        del dlm
    return size, times[0], statistics.median(times[1:])


def simulated_reuse(d_model: int, layers: int, cells: int = 36, workers: int = 8) -> None:
    import torch

    torch.set_num_threads(1)
    small = _llada_load_time(d_model // 2, max(1, layers // 2))
    size, first, load = _llada_load_time(d_model, layers)
    per_byte = (load - small[2]) / (size - small[0])
    fixed = load - per_byte * size
    per_worker = math.ceil(cells / workers)
    print(
        f"\nmodel folder: released LLaDA code, d_model {d_model}, {layers} layers, "
        f"{size / 1e9:.2f} GB on disk; load {first:.2f} s first (remote code), "
        f"{load:.2f} s median of 3 after; half size ({small[0] / 1e9:.2f} GB): {small[2]:.2f} s "
        f"({load_avg()})"
    )
    print(f"{cells}-cell grid on {workers} workers, one base, measured load {load:.2f} s:")
    print("| | loads | load s in all | load s on the busiest worker |")
    print("|---|---|---|---|")
    print(f"| load per cell | {cells} | {cells * load:.1f} | {per_worker * load:.1f} |")
    print(f"| base kept per worker | {workers} | {workers * load:.1f} | {load:.1f} |")
    if per_byte > 0:
        eight_b = fixed + per_byte * 16.1e9
        print(
            f"extrapolated to an 8B bf16 checkpoint (16.1 GB) with the fit load = {fixed:.2f} s + "
            f"{per_byte * 1e9:.2f} s/GB: {eight_b:.0f} s per load; {cells * eight_b / 60:.0f} "
            f"min of loading per grid without reuse vs {workers * eight_b / 60:.0f} min with it"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--skip-grid", action="store_true", help="only the simulation")
    parser.add_argument("--skip-simulation", action="store_true")
    parser.add_argument(
        "--only", default="", help="comma list of words picking grid runs: in-process,local,ray"
    )
    args = parser.parse_args()
    print(load_avg())
    if not args.skip_grid:
        only = [w for w in args.only.split(",") if w]
        executors_side_by_side(with_ray=not args.no_ray, only=only)
    if not args.skip_simulation:
        simulated_reuse(args.d_model, args.layers)


if __name__ == "__main__":
    main()
