"""Sampler speed and accuracy: plain vs cached vs parallel decoding, side by side in one run.

Run by hand, on adapters from a finished bench run on the tiny base, fine-tuned with the EOS tail
at the length measured (`bench run --methods lora,nara --tasks ... --set train.eos_tail=256`):

    PYTHONPATH=. .venv/bin/python benchmarks/bench_sampler.py --run runs/NAME [--threads 1]
        [--device cpu|cuda] [--dtype auto|bf16] [--gen-lengths 256,512] [--block 32]
        [--batches 1,16] [--repeats 3] [--methods lora,nara] [--lengths 16/4,256/32,512/32]
        [--tasks ...] [--limit N] [--skip-speed] [--skip-accuracy]

Targets on a 2-core CPU (the tiny base, whose pretraining teaches the EOS tail): dual+threshold
at least 10x plain's tokens/s (CPU time) at gen 256 and 15x at gen 512 (block 32, batch 1 and
16), each within 1 accuracy point of plain on every synthetic suite, for LoRA and NaRA; NaRA
with the refresh setting that keeps it there (its cost: the refreshes and the speed it leaves).

Speed: for the first LoRA and NaRA cell of the run, every gen length and every batch size, the
settings plain, prefix, dual, threshold:0.9 and dual+threshold:0.9 are timed interleaved in each
repeat (median reported) on fixed prompts (or, with ``--speed-task``, on that task's test prompts
with that task's cell), without stopping at EOS, so every setting decodes the
same number of tokens. Each line gives tokens/s (wall), the speed-up over plain by wall time and by this
process's CPU time (the steadier one on a shared machine), and forwards per token; the load
average is printed before and after each batch size.

Accuracy: every cell of those methods on ``--tasks``, at each ``gen/block`` of ``--lengths`` (one
step per token), under the sampler settings below, each with its paired difference to plain and
the 95% bootstrap interval, and the share of outputs identical to plain. ``dual, refreshed every
step`` must give 100% identical outputs: a check that the cache itself is exact. NaRA also runs
dual+threshold with step-level refreshes, to find the bound that brings it within 1 point; the
speed run also times dual+threshold with the refresh that held at gen 256 and 512.

On a GPU (``--device cuda``) the sampler runs under bf16 autocast, as the harness evaluates;
``benchmarks/gpu_sampling.sh`` runs the device checks as one script.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from harness.config.cell import EvalConfig
from harness.ground.device import autocast_for
from harness.processes.masked.sampling import SamplerConfig, SamplingStats, generate

SPEED_SETTINGS = {
    "plain": {},
    "prefix": {"cache": "prefix"},
    "dual": {"cache": "dual"},
    "threshold:0.9": {"parallel": "threshold:0.9"},
    "dual+threshold:0.9": {"cache": "dual", "parallel": "threshold:0.9"},
}
FASTEST = {"cache": "dual", "parallel": "threshold:0.9"}
ACCURACY_SETTINGS = {
    **SPEED_SETTINGS,
    "dual, refreshed every step": {"cache": "dual", "cache_refresh": "step-level-change:0.0001"},
}
# 0.25-0.05 are the bounds that matter at short lengths; at gen 256 and 512 a level moves by
# 1/gen per committed token, and 0.002 gave plain's answers on every synthetic suite for LoRA
# and NaRA at both lengths (0.01 did not at 512), so it is also timed by default.
REFRESHES = (
    "step-level-change:0.25",
    "step-level-change:0.1",
    "step-level-change:0.05",
    "step-level-change:0.002",
)
SPEED_REFRESHES = "step-level-change:0.002"
SYNTHETIC = "synth_math,synth_choice,synth_code"
UNSEEN = "synth_math_unseen,synth_choice_unseen,synth_code_unseen"


def load(cell_dir: Path, device: str):
    """The cell's base model with its adapter (no lm-eval import: the GPU image lacks it)."""
    from harness.models.loader import load_model
    from harness.run.adapter_paths import resolve_adapter
    from methods.registry import load_adapter
    from results.store import RECORD_NAME, read_record

    dlm = load_model(str(read_record(cell_dir / RECORD_NAME).config["model"]), device)
    load_adapter(dlm, resolve_adapter(cell_dir)[0])
    return dlm.eval()


def precision(dlm, dtype: str):
    """bf16 autocast on CUDA (as the harness evaluates); ``--dtype bf16`` tries it on the CPU."""
    if dlm.device.type == "cpu" and dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return autocast_for(dlm.device)


def cells_of(run: Path, method: str, tasks: list[str] | None = None) -> list[Path]:
    from results.store import RECORD_NAME, read_record

    out = []
    for cell in sorted((run / "cells").iterdir()):
        path = cell / RECORD_NAME
        if path.is_file():
            record = read_record(path)
            if record.status != "done" or record.method != method:
                continue
            if tasks is None or record.config["task"] in tasks:
                out.append(cell)
    if tasks is not None:  # in the order asked
        out.sort(key=lambda c: tasks.index(read_record(c / RECORD_NAME).config["task"]))
    return out


def _load_line() -> str:
    return "load " + " ".join(f"{v:.1f}" for v in os.getloadavg())


def timed(dlm, prompts, config: SamplerConfig, dtype: str) -> tuple[SamplingStats, float]:
    """The sampler's stats and this process's CPU seconds for one call."""
    stats = SamplingStats()
    cpu = time.process_time()
    with precision(dlm, dtype):
        generate(dlm, prompts, config, stats=stats)
    if dlm.device.type == "cuda":
        torch.cuda.synchronize()
    return stats, time.process_time() - cpu


def speed_prompts(dlm, task: str, n: int) -> list[list[int]]:
    """Fixed arithmetic prompts, or the first ``n`` test prompts of ``task`` (plain template)."""
    if not task:
        return [dlm.tokenizer.encode(f"Q: what is {i} plus {2 * i}?\nA:") for i in range(n)]
    from tasks.prompts import format_prompt
    from tasks.synthetic_tasks import make_split

    return [
        dlm.tokenizer.encode_prompt(format_prompt(e, "plain"))
        for e in make_split(task, "test", n, seed=0)
    ]


def speed(dlm, args, label: str, gen: int, settings: dict[str, dict]) -> None:
    sizes = [int(b) for b in args.batches.split(",")]
    prompts = speed_prompts(dlm, args.speed_task, max(sizes))
    configs = {
        name: SamplerConfig(gen, gen, args.block, stop_at_eos=False, **extra)
        for name, extra in settings.items()
    }
    timed(dlm, prompts[:2], SamplerConfig(64, 64, 32, stop_at_eos=False), args.dtype)  # warm-up
    for b in sizes:
        print(f"  {label} gen {gen} batch {b} ({_load_line()}):", flush=True)
        wall = {n: [] for n in configs}
        cpu = {n: [] for n in configs}
        fpt = {}
        for _ in range(args.repeats):
            for name, config in configs.items():
                stats, seconds = timed(dlm, prompts[:b], config, args.dtype)
                wall[name].append(stats.time_s)
                cpu[name].append(seconds)
                fpt[name] = stats.forwards_per_token
        base_wall, base_cpu = statistics.median(wall["plain"]), statistics.median(cpu["plain"])
        for name in configs:
            w, c = statistics.median(wall[name]), statistics.median(cpu[name])
            print(
                f"    {name:48s} {b * gen / w:9.1f} tokens/s  "
                f"{base_wall / w:5.2f}x plain (wall)  {base_cpu / c:5.2f}x plain (cpu)  "
                f"{fpt[name]:.3f} forwards/token",
                flush=True,
            )
        print(f"    ({_load_line()})", flush=True)


def accuracy(cell_dir: Path, args, gen: int, block: int, settings: dict[str, dict]) -> list:
    import pandas as pd

    from harness.processes.evaluation import evaluate
    from reports.stats import paired_bootstrap
    from results.store import RECORD_NAME, read_record
    from tasks.registry import get_task
    from tasks.sources import load_task_data

    record = read_record(cell_dir / RECORD_NAME)
    limit = args.limit or record.config["eval"]["limit"]
    spec = get_task(record.config["task"])
    data = load_task_data(spec, seed=record.seed, limit=limit)
    dlm = load(cell_dir, args.device)
    fields = {**record.config["eval"], "gen_length": gen, "block_length": block, "limit": limit}
    results = {}
    for name, extra in settings.items():
        config = EvalConfig(**{**fields, "batch_size": 64, **extra})
        outcome = evaluate(dlm, spec, data.test.examples, config, gen, record.seed)
        rows = outcome.score.per_example
        frame = pd.DataFrame(
            {
                "id": [str(r["id"]) for r in rows],
                "seed": 0,
                "correct": [float(r["correct"]) for r in rows],
            }
        )
        results[name] = (
            outcome.score.value,
            outcome.sampling,
            frame,
            [r["prediction"] for r in rows],
        )
    plain_value, _, plain_frame, plain_out = results["plain"]
    summary = []
    for name, (value, stats, frame, out) in results.items():
        same = sum(a == b for a, b in zip(out, plain_out, strict=True)) / len(out)
        line = (
            f"    {record.method:5s} {spec.name:20s} gen {gen:3d} block {block:2d} {name:42s} "
            f"acc {value * 100:5.1f}  same as plain {same * 100:5.1f}%  "
            f"{stats.forwards_per_token:.3f} fwd/token  refreshes {stats.refreshes}"
        )
        ci = None
        if name != "plain":
            ci = paired_bootstrap(frame, plain_frame)
            line += f"  diff {ci.mean * 100:+.1f} [{ci.lo * 100:+.1f}, {ci.hi * 100:+.1f}]"
        print(line, flush=True)
        summary.append((record.method, spec.name, gen, block, name, plain_value, value, ci, same))
    return summary


def print_table(summary: list) -> None:
    """The deliverable: plain vs each setting with its paired interval, one row per cell."""
    print("\n| method | task | gen/block | setting | plain | setting acc | diff [95% CI] |")
    print("|---|---|---|---|---|---|---|")
    for method, task, gen, block, name, plain, value, ci, _ in summary:
        if ci is None:
            continue
        print(
            f"| {method} | {task} | {gen}/{block} | {name} | {plain * 100:.1f} | "
            f"{value * 100:.1f} | {ci.mean * 100:+.1f} [{ci.lo * 100:+.1f}, {ci.hi * 100:+.1f}] |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "bf16"])
    parser.add_argument("--gen-lengths", default="256,512", help="for speed")
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default="lora,nara")
    parser.add_argument(
        "--lengths", default="16/4,256/32,512/32", help="gen/block pairs for accuracy"
    )
    parser.add_argument("--tasks", default=f"{SYNTHETIC},{UNSEEN}")
    parser.add_argument("--limit", type=int, default=None, help="default: the cell's own")
    parser.add_argument("--refreshes", default=",".join(REFRESHES))
    parser.add_argument("--refresh-methods", default="nara", help="methods that try --refreshes")
    parser.add_argument(
        "--speed-refreshes",
        default=SPEED_REFRESHES,
        help="refresh rules also timed (the ones that hold); '' for none",
    )
    parser.add_argument("--settings", default="", help="';'-list of setting names to run")
    parser.add_argument(
        "--speed-task", default="", help="time on this synthetic task's test prompts"
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"threads={args.threads} device={args.device} dtype={args.dtype} gen={args.gen_lengths} "
        f"block={args.block} "
        f"{_load_line()}"
    )
    methods = args.methods.split(",")
    if not args.skip_speed:
        for method in methods:
            cells = cells_of(args.run, method, [args.speed_task] if args.speed_task else None)
            if not cells:
                continue
            settings = dict(SPEED_SETTINGS)
            if method in args.refresh_methods.split(","):
                for r in filter(None, args.speed_refreshes.split(",")):
                    settings[f"dual+threshold:0.9, refresh {r}"] = {**FASTEST, "cache_refresh": r}
            dlm = load(cells[0], args.device)
            for gen in (int(g) for g in args.gen_lengths.split(",")):
                t0 = time.perf_counter()
                speed(dlm, args, f"{method} ({cells[0].name})", gen, settings)
                print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    if not args.skip_accuracy:
        summary = []
        lengths = [tuple(int(v) for v in pair.split("/")) for pair in args.lengths.split(",")]
        for method in methods:
            settings = dict(ACCURACY_SETTINGS)
            if method in args.refresh_methods.split(","):
                for r in filter(None, args.refreshes.split(",")):
                    settings[f"dual+threshold:0.9, refresh {r}"] = {**FASTEST, "cache_refresh": r}
            if args.settings:
                keep = {"plain", *args.settings.split(";")}
                settings = {k: v for k, v in settings.items() if k in keep}
            for cell in cells_of(args.run, method, args.tasks.split(",")):
                for gen, block in lengths:
                    summary += accuracy(cell, args, gen, block, settings)
        print_table(summary)
        print(_load_line())


if __name__ == "__main__":
    main()
