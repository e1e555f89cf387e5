"""L2D speed on the tiny causal base: decoding tokens/s at 2, 8 and 32 flow steps against the
base's plain decoding (batch 1 and 16), and one training step of L2D against one of LoRA.

Everything is measured in one process, side by side, with process CPU time (the machine is
shared), threads pinned. Run by hand:

    PYTHONPATH=. .venv/bin/python benchmarks/bench_l2d.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def _cpu_time(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--solver", default="midpoint")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from harness.config.cell import TrainConfig
    from harness.models.loader import load_model
    from harness.processes.causal.decode import greedy_generate
    from harness.processes.masked.sampling import SamplingStats
    from harness.processes.training import train_adapter
    from methods.l2d.solve import FlowSettings
    from methods.registry import get_method
    from tasks.prompts import format_prompt

    print(f"load average {os.getloadavg()}, threads {args.threads}, solver {args.solver}")
    base = load_model("tiny-ar", "cpu")
    l2d = load_model("tiny-ar", "cpu")
    method = get_method("l2d")
    method.apply(l2d, method.config(rank=8, rep_size=16, embed_dim=64, sigma=16.0))
    tok = base.tokenizer
    prompts = [tok.encode(f"Bags of {i},{i + 2},{i + 4} pens. Most?") for i in range(16)]

    for batch in (1, 16):
        rows = prompts[:batch]

        plain_stats = SamplingStats()

        def plain(rows=rows, stats=plain_stats):
            greedy_generate(base, rows, args.tokens, None, stats, stop_at_eos=False)

        seconds = _cpu_time(plain, args.repeats)
        plain_tps = plain_stats.tokens / (args.repeats + 1) / seconds  # tokens actually decoded
        print(f"batch {batch:2d} base plain        {plain_tps:9.1f} tokens/s (CPU)")
        for steps in (2, 8, 32):
            stats = SamplingStats()

            def flow(rows=rows, steps=steps, stats=stats):
                settings = FlowSettings(steps, args.solver, torch.Generator().manual_seed(0))
                greedy_generate(l2d, rows, args.tokens, settings, stats, stop_at_eos=False)

            seconds = _cpu_time(flow, args.repeats)
            tps = stats.tokens / (args.repeats + 1) / seconds
            print(
                f"batch {batch:2d} l2d {args.solver} {steps:2d} steps {tps:9.1f} tokens/s "
                f"(CPU), {stats.flow_evals_per_token:.0f} flow evals/token, "
                f"{plain_tps / tps:.1f}x slower than plain"
            )

    from tasks.registry import get_task
    from tasks.sources import load_task_data

    data = load_task_data(get_task("synth_math_unseen"), seed=0, limit=64, train_limit=256)
    encoded = [
        (tok.encode(format_prompt(ex, "plain")), tok.encode(ex.target))
        for ex in data.train.examples
    ]
    config = TrainConfig(steps=1, lr=2e-3, batch_size=32, grad_accum=1, val_every=1000)
    times = {}
    for name in ("lora", "l2d"):
        model = load_model("tiny-ar", "cpu")
        m = get_method(name)
        fields = {"rank": 8}
        if name == "l2d":
            fields.update(rep_size=16, embed_dim=64, sigma=16.0)
        adapter = m.apply(model, m.config(**fields))
        times[name] = _cpu_time(
            lambda model=model, adapter=adapter: train_adapter(
                model, adapter, encoded, [], config, seed=0
            ),
            args.repeats,
        )
        counts = adapter.parameter_counts()
        print(f"train step {name:4s} {times[name] * 1000:7.1f} ms CPU, {counts.adapter} params")
    print(f"l2d / lora training step: {times['l2d'] / times['lora']:.2f}x")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
