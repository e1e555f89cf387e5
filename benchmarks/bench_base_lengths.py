"""The tiny base's plain-sampler accuracy at several generation lengths, family by family.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_base_lengths.py [--base DIR] [--n 100]
        [--families synth_math,synth_choice,synth_code] [--lengths 16/4,32/32,256/32,512/32]
        [--threads 1] [--answers]

Greedy sampling with one step per token (``SamplerConfig(gen, gen, block)``, stopping at EOS),
exact match of the answer on each family's validation split, as the base's pretraining report
scores it. Without ``--base`` the default tiny base is used (pretrained first if it is not
cached). Each length after the first also shows its paired difference to the first (points,
the same examples) with a 95% bootstrap interval.

Target (the base's pretraining teaches the EOS tail): accuracy at 256/32 within 2 points of
16/4 on every family. 32/32 next to it separates the block's effect (answers whose length the
sampler must decide in parallel) from the length's, and 256/4 the length's at the block of
16/4. ``--answers`` adds, per length, the base's most frequent answer and its share, and per
family the accuracy of always giving the most frequent target: on a family the base cannot do
(the unseen ones) its accuracy is that of a default guess, and what a length changes is which
guess.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter

import torch

from harness.models.loader import load_model
from harness.processes.masked.sampling import SamplerConfig, generate
from harness.processes.pretraining import TINY_TEMPLATE
from reports.stats import bootstrap_mean_ci
from tasks.prompts import format_prompt
from tasks.synthetic_tasks import make_split


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="tiny")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--families", default="synth_math,synth_choice,synth_code")
    parser.add_argument("--lengths", default="16/4,32/32,256/32,512/32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--answers", action="store_true", help="most frequent answers too")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dlm = load_model(args.base, "cpu").eval()
    print(f"base {args.base}, {args.n} examples per family, load {_load()}")
    for family in args.families.split(","):
        examples = make_split(family, "validation", args.n, seed=0)
        prompts = [dlm.tokenizer.encode(format_prompt(e, TINY_TEMPLATE)) for e in examples]
        line, first = [], None
        for pair in args.lengths.split(","):
            gen, block = (int(v) for v in pair.split("/"))
            start = time.perf_counter()
            with torch.no_grad():
                outputs = generate(dlm, prompts, SamplerConfig(gen, gen, block))
            answers = [dlm.tokenizer.decode(o).strip() for o in outputs]
            correct = [float(a == e.target.strip()) for a, e in zip(answers, examples, strict=True)]
            line.append(f"{pair} {sum(correct) / args.n:.3f} ({time.perf_counter() - start:.0f} s)")
            if first is None:
                first = correct
            else:  # paired by example: this length's answers against the first length's
                ci = bootstrap_mean_ci([a - b for a, b in zip(correct, first, strict=True)])
                line[-1] += f" {100 * ci.mean:+.1f} [{100 * ci.lo:+.1f}, {100 * ci.hi:+.1f}]"
            if args.answers:
                ((top, count),) = Counter(answers).most_common(1)
                line[-1] += f" [{top!r} {count / args.n:.0%}]"
        if args.answers:
            ((target, count),) = Counter(e.target.strip() for e in examples).most_common(1)
            line.append(f"always {target!r}: {count / args.n:.3f}")
        print(f"  {family:22s} " + "  ".join(line), flush=True)
    print(f"load {_load()}")


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    from harness.ground.errors import BenchError

    try:
        main()
    except BenchError as err:  # e.g. --n above a family's distinct validation examples
        raise SystemExit(f"error: {err}") from None
