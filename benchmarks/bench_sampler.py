"""Sampler speed and accuracy: plain vs cached vs parallel decoding, side by side in one run.

Run by hand (tiny base at $BENCH_CACHE, adapters from a finished bench run):

    .venv/bin/python benchmarks/bench_sampler.py --run runs/NAME [--threads 1] [--repeats 3]
        [--gen-length 256] [--block 32] [--batches 1,16] [--limit 100] [--skip-accuracy]

Speed: for the LoRA and NaRA adapters of the run (first seed, first task) and every batch size,
the settings plain, prefix, dual, threshold, dual+threshold are timed interleaved in each repeat
(median reported) on fixed prompts, without stopping at EOS, so every setting decodes the same
number of tokens. Accuracy: every synthetic-suite cell of those methods, plain vs dual+threshold,
with the paired bootstrap interval; for NaRA also dual+threshold with step-level refreshes, to find
the refresh bound that brings its staleness cost within 1 point. The load average is printed with
the numbers because this machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from harness.config import EvalConfig
from harness.sampling import SamplerConfig, SamplingStats, generate

SPEED_SETTINGS = {
    "plain": {},
    "prefix": {"cache": "prefix"},
    "dual": {"cache": "dual"},
    "threshold:0.9": {"parallel": "threshold:0.9"},
    "dual+threshold:0.9": {"cache": "dual", "parallel": "threshold:0.9"},
}
FASTEST = {"cache": "dual", "parallel": "threshold:0.9"}
REFRESHES = ("step-level-change:0.25", "step-level-change:0.1", "step-level-change:0.05")


def load(cell_dir: Path):
    from harness.lmeval import load_adapted

    dlm, _, _ = load_adapted(None, cell_dir, "cpu")
    return dlm


def cells_of(run: Path, method: str) -> list[Path]:
    from results.store import RECORD_NAME, read_record

    out = []
    for cell in sorted((run / "cells").iterdir()):
        path = cell / RECORD_NAME
        if path.is_file():
            record = read_record(path)
            if record.status == "done" and record.method == method:
                out.append(cell)
    return out


def speed(dlm, args, label: str) -> None:
    sizes = [int(b) for b in args.batches.split(",")]
    prompts = [dlm.tokenizer.encode(f"Q: what is {i} plus {2 * i}?\nA:") for i in range(max(sizes))]
    configs = {
        name: SamplerConfig(
            args.gen_length, args.gen_length, args.block, stop_at_eos=False, **extra
        )
        for name, extra in SPEED_SETTINGS.items()
    }
    generate(dlm, prompts[:2], SamplerConfig(64, 64, 32, stop_at_eos=False))  # warm-up
    times = {(b, n): [] for b in sizes for n in configs}
    fpt = {}
    for _ in range(args.repeats):
        for b in sizes:
            for name, config in configs.items():
                stats = SamplingStats()
                generate(dlm, prompts[:b], config, stats=stats)
                times[(b, name)].append(stats.time_s)
                fpt[(b, name)] = stats.forwards_per_token
    for b in sizes:
        base = statistics.median(times[(b, "plain")])
        print(f"  {label} batch {b}:")
        for name in configs:
            med = statistics.median(times[(b, name)])
            tps = b * args.gen_length / med
            print(
                f"    {name:20s} {tps:9.1f} tokens/s  {base / med:5.2f}x plain  "
                f"{fpt[(b, name)]:.3f} forwards/token"
            )


def accuracy(cell_dir: Path, args, settings: dict[str, dict]) -> None:
    import pandas as pd

    from harness.evaluation import evaluate
    from reports.stats import paired_bootstrap
    from results.store import RECORD_NAME, read_record
    from tasks.registry import get_task
    from tasks.sources import load_task_data

    record = read_record(cell_dir / RECORD_NAME)
    spec = get_task(record.config["task"])
    data = load_task_data(spec, seed=record.seed, limit=args.limit)
    dlm = load(cell_dir)
    base = EvalConfig(
        **{
            **record.config["eval"],
            "gen_length": args.gen_length,
            "block_length": args.block,
            "batch_size": 64,
            "limit": args.limit,
        }
    )
    frames, summary = {}, {}
    for name, extra in settings.items():
        outcome = evaluate(
            dlm,
            spec,
            data.test.examples,
            EvalConfig(**{**base.__dict__, **extra}),
            args.gen_length,
            record.seed,
        )
        rows = outcome.score.per_example
        frames[name] = pd.DataFrame(
            {
                "id": [str(r["id"]) for r in rows],
                "seed": 0,
                "correct": [float(r["correct"]) for r in rows],
            }
        )
        summary[name] = (outcome.score.value, outcome.sampling)
    plain_acc = summary["plain"][0]
    for name, (value, stats) in summary.items():
        line = f"    {record.method:5s} {spec.name:13s} {name:42s} acc {value * 100:5.1f}  {stats.tokens_per_s:8.1f} tokens/s  {stats.forwards_per_token:.3f} fwd/token"
        if name != "plain":
            ci = paired_bootstrap(frames[name], frames["plain"])
            line += f"  diff {ci.mean * 100:+.1f} [{ci.lo * 100:+.1f}, {ci.hi * 100:+.1f}]"
        print(line, flush=True)
    del plain_acc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gen-length", type=int, default=256)
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--methods", default="lora,nara")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads={args.threads} gen={args.gen_length} block={args.block} load={os.getloadavg()}")
    methods = args.methods.split(",")
    if not args.skip_speed:
        for method in methods:
            cells = cells_of(args.run, method)
            if cells:
                t0 = time.perf_counter()
                speed(load(cells[0]), args, method)
                print(f"  ({time.perf_counter() - t0:.0f} s, load {os.getloadavg()})", flush=True)
    if not args.skip_accuracy:
        for method in methods:
            settings = {"plain": {}, "dual+threshold:0.9": FASTEST}
            if method == "nara":
                settings.update(
                    {
                        f"dual+threshold:0.9+refresh={r}": {**FASTEST, "cache_refresh": r}
                        for r in REFRESHES
                    }
                )
            for cell in cells_of(args.run, method):
                accuracy(cell, args, settings)
        print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
