"""Cache speed on the released LLaDA and Dream code: plain vs prefix vs dual, random weights.

Run by hand (needs ../shared/fixtures/dllm-code, or BENCH_DLLM_FIXTURES; random weights, so
only speed means anything):

    PYTHONPATH=. .venv/bin/python benchmarks/bench_released_cache.py [--hidden 256] [--layers 4]
        [--gen-length 64] [--block 16] [--batch 4] [--threads 1] [--repeats 3]
        [--device cpu|cuda] [--dtype auto|bf16|fp32] [--families llada,dream]

Every setting decodes the same number of tokens (no EOS stop); the median time of the repeats,
interleaved, is reported with the forwards. Before timing, a frozen-context check prints how far
each cached window's logits are from the uncached forward in the dtype used (exact in fp32 up to
1e-5, see tests/test_sampling_released.py; bf16 and the GPU kernels are what this measures),
and the share of positions whose argmax agrees.

``--dtype auto`` is the loader's: bf16 weights on CUDA (with bf16 autocast, as the harness
evaluates), fp32 on the CPU; ``bf16`` on the CPU casts the weights, to try the bf16 path without
a GPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from harness.ground.device import autocast_for
from harness.models.loader import load_model
from harness.processes.masked.sampling import SamplerConfig, SamplingStats, generate, left_pad
from tests.released_models import build_dream, build_llada, require_fixtures

PROMPTS = ["Q: 7+1=", "A longer question: 2+2=", "Hi", "Q: what is 12 times 3? A:"]


def frozen_check(dlm, prompts, gen_length: int, block: int) -> list[dict]:
    """Cached window logits against the uncached forward over one frozen state: per window, the
    largest difference, the largest logit and the share of positions whose argmax agrees."""
    backend = dlm.family.cache_backend
    rows = []
    ids, prompt_attention = left_pad(prompts, dlm.tokenizer.pad_token_id)
    g = torch.Generator().manual_seed(0)
    gen = torch.randint(40, 120, (len(prompts), gen_length), generator=g)
    gen[:, block + block // 2 :] = dlm.mask_id  # block 0 done, block 1 half done
    x = torch.cat([ids, gen], 1).to(dlm.device)
    attention = torch.cat([prompt_attention, torch.ones_like(gen)], 1).to(dlm.device)
    level = torch.full((len(prompts),), 0.7, device=dlm.device)
    start = ids.shape[1] + block
    if gen_length <= 2 * block:
        print("  check: gen length <= 2 blocks, so the dual window has no cached suffix after it")
    with torch.no_grad(), autocast_for(dlm.device):
        full = dlm(x, level, attention).float()
        _, cache = backend.record(dlm, x, level, attention)
        for window, end in (("prefix", x.shape[1]), ("dual", start + block)):
            read = backend.read(dlm, x[:, start:end], start, level, attention, cache).float()
            want = full[:, start:end]
            diff = (read - want).abs().max().item()
            scale = want.abs().max().item()
            agree = (read.argmax(-1) == want.argmax(-1)).float().mean().item()
            rows.append({"window": window, "max_diff": diff, "max_logit": scale, "argmax": agree})
            print(
                f"  check {dlm.info.family:6s} {window:6s} max |cached - uncached| {diff:.2e} "
                f"(logits up to {scale:.1f}), argmax agrees {agree * 100:.1f}%",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--gen-length", type=int, default=64)
    parser.add_argument("--block", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--families", default="llada,dream")
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
    print(
        f"load average {os.getloadavg()[0]:.1f}, threads {args.threads}, device {args.device}, "
        f"dtype {args.dtype}"
    )
    for family in args.families.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            dlm = load_model(str(sizes[family](tmp)), args.device).eval()
        if args.dtype != "auto":
            dlm.to(torch.bfloat16 if args.dtype == "bf16" else torch.float32)
        with torch.no_grad():  # random weights give near-zero logits: make them tell apart
            dlm.backbone.get_output_embeddings().weight.mul_(50.0)
        print(f"{family}: weights {next(dlm.parameters()).dtype}")
        prompts = [dlm.tokenizer.encode_prompt(p) for p in (PROMPTS * 16)[: args.batch]]
        frozen_check(dlm, prompts, args.gen_length, args.block)
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
                with autocast_for(dlm.device):
                    generate(dlm, prompts, config, stats=stats)
                if dlm.device.type == "cuda":
                    torch.cuda.synchronize()
                times.setdefault(cache, []).append(time.perf_counter() - began)
                forwards[cache] = stats.forwards
        plain = statistics.median(times["none"])
        for cache, runs in times.items():
            t = statistics.median(runs)
            tokens = args.batch * args.gen_length
            print(
                f"{family:6s} cache={cache:6s} {t:7.2f}s  {tokens / t:7.1f} tok/s  "
                f"x{plain / t:4.2f}  forwards={forwards[cache]}",
                flush=True,
            )


if __name__ == "__main__":
    main()
