"""Cache speed on the released LLaDA and Dream code: plain vs prefix vs dual, random weights.

Run by hand (needs ../shared/fixtures/dllm-code; random weights, so only speed means anything):

    PYTHONPATH=. .venv/bin/python benchmarks/bench_released_cache.py [--hidden 256] [--layers 4]
        [--gen-length 64] [--block 16] [--batch 4] [--threads 1] [--repeats 3]

Every setting decodes the same number of tokens (no EOS stop); the median time of the repeats,
interleaved, is reported with the forwards and the window each cached step ran.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from harness.models.loader import load_model
from harness.sampling import SamplerConfig, SamplingStats, generate
from tests.released_models import build_dream, build_llada, require_fixtures

PROMPTS = ["Q: 7+1=", "A longer question: 2+2=", "Hi", "Q: what is 12 times 3? A:"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--gen-length", type=int, default=64)
    parser.add_argument("--block", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    require_fixtures()
    torch.set_num_threads(args.threads)
    heads = max(1, args.hidden // 64)
    sizes = {
        "llada": lambda p: build_llada(
            p,
            d_model=args.hidden,
            n_layers=args.layers,
            n_heads=heads,
            n_kv_heads=heads,
            mlp_hidden_size=4 * args.hidden,
        ),
        "dream": lambda p: build_dream(
            p,
            hidden_size=args.hidden,
            num_hidden_layers=args.layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            intermediate_size=4 * args.hidden,
        ),
    }
    print(f"load average {os.getloadavg()[0]:.1f}, threads {args.threads}")
    for family, build in sizes.items():
        with tempfile.TemporaryDirectory() as tmp:
            dlm = load_model(str(build(tmp)), "cpu").eval()
        prompts = [dlm.tokenizer.encode_prompt(p) for p in (PROMPTS * 4)[: args.batch]]
        times: dict[str, list[float]] = {}
        forwards: dict[str, int] = {}
        for _ in range(args.repeats):
            for cache in ("none", "prefix", "dual"):
                config = SamplerConfig(
                    gen_length=args.gen_length,
                    steps=args.gen_length,
                    block_length=args.block,
                    cache=cache,
                    stop_at_eos=False,
                )
                stats = SamplingStats()
                began = time.perf_counter()
                generate(dlm, prompts, config, stats=stats)
                times.setdefault(cache, []).append(time.perf_counter() - began)
                forwards[cache] = stats.forwards
        plain = statistics.median(times["none"])
        for cache, runs in times.items():
            t = statistics.median(runs)
            tokens = args.batch * args.gen_length
            print(
                f"{family:6s} cache={cache:6s} {t:7.2f}s  {tokens / t:7.1f} tok/s  "
                f"x{plain / t:4.2f}  forwards={forwards[cache]}"
            )


if __name__ == "__main__":
    main()
