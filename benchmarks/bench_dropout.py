"""LoRA training steps with torch's dropout against the gap-drawn one (methods/dropout.py).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_dropout.py [--repeats 4] [--profile]

The default tiny base, LoRA with the release's dropout 0.05, synth_code_slice batches of 16 at
the demo's lr: 40 steps with each dropout, interleaved ``--repeats`` times in one process on one
thread; median CPU seconds and their ratio. ``--profile`` adds torch's operator table for 20
steps with the gap-drawn dropout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from harness.config.cell import TrainConfig
from harness.ground.device import autocast_for
from harness.models.loader import load_model
from harness.processes.masked.objective import DiffusionObjective
from harness.processes.training import adapter_optimizer
from methods.dropout import GapDropout
from methods.registry import get_method
from tasks.prompts import format_prompt
from tasks.synthetic_tasks import make_split


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dlm = load_model("tiny", "cpu")
    adapter = get_method("lora").apply(dlm, None)
    tok = dlm.tokenizer
    examples = make_split("synth_code_slice", "train", 800, seed=0)
    data = [(tok.encode_prompt(format_prompt(e, "plain")), tok.encode(e.target)) for e in examples]
    config = TrainConfig(batch_size=16, grad_accum=1, lr=4e-3, max_length=192)
    objective, optimizer = DiffusionObjective(), adapter_optimizer(adapter, config)
    dropouts = [m for m in dlm.backbone.modules() if isinstance(m, GapDropout)]
    dlm.train()

    def steps(kind: str, n: int = 40) -> float:
        for module in dropouts:  # the same modules, the other forward
            module.__class__ = GapDropout if kind == "gap" else nn.Dropout
        generator = torch.Generator().manual_seed(0)
        start = time.process_time()
        for i in range(n):
            micro = data[(i * 16) % 784 : (i * 16) % 784 + 16]
            loss, _ = objective.micro_loss(
                dlm, adapter, micro, config, generator, autocast_for(dlm.device)
            )
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return time.process_time() - start

    print(f"load before {os.getloadavg()[0]:.2f}")
    steps("torch", 5), steps("gap", 5)  # warm-up
    seconds: dict[str, list[float]] = {"torch": [], "gap": []}
    for _ in range(args.repeats):
        for kind in seconds:
            seconds[kind].append(steps(kind))
    torch_s, gap_s = statistics.median(seconds["torch"]), statistics.median(seconds["gap"])
    print({k: [round(v, 2) for v in vs] for k, vs in seconds.items()})
    print(
        f"median CPU s per 40 steps: torch's dropout {torch_s:.2f}, gap-drawn {gap_s:.2f}, "
        f"ratio {torch_s / gap_s:.3f}; load after {os.getloadavg()[0]:.2f}"
    )
    if args.profile:
        from torch import profiler

        with profiler.profile(activities=[profiler.ProfilerActivity.CPU]) as prof:
            steps("gap", 20)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
