"""Which part of the approximate cache changes the sampler's decisions, step by step.

Run by hand on a trained cell (tiny base; any family with a cache backend works):

    PYTHONPATH=. .venv/bin/python benchmarks/cache_staleness.py runs/NAME/cells/CELL
        [--gen-length 16] [--block 4] [--limit 200] [--threads 1]

It follows the PLAIN sampler's trajectory (greedy, the schedule's fixed count), so errors do not
compound, and at every step after a block's first it compares the plain forward's predictions for
the block's masked positions with five cached reads of the same step:

- ``dual``: prompt, finished blocks and the masked suffix from the cache recorded at the block's
  first step (what ``cache=dual`` does);
- ``prefix``: the same cache for the prompt and finished blocks, the suffix recomputed
  (``cache=prefix``);
- ``dual, context stale``: a cache recorded from the block's first-step tokens but at this
  step's noise level: only the tokens committed since then are missing from it;
- ``dual, level stale``: a cache recorded from this step's tokens at the block's first-step level:
  only the noise level is old (the adapter's C(t); nothing for LoRA);
- ``dual, refreshed``: a cache recorded at this step (tokens and level): must agree exactly.

For each it prints how often the argmax over the block's masked positions differs from plain,
and how often the token the plain rule would commit next (position and token) differs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from harness.processes.masked.sampling.cache import CACHE_BACKENDS
from harness.processes.masked.sampling.loop import left_pad
from harness.processes.masked.sampling.schedule import transfer_counts

VARIANTS = ("dual", "prefix", "dual, context stale", "dual, level stale", "dual, refreshed")


def _decision(logits: torch.Tensor, masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy tokens, and the (position, token) the plain rule commits first, per row."""
    tokens = logits.argmax(-1)
    confidence = torch.softmax(logits.float(), -1).gather(-1, tokens[..., None]).squeeze(-1)
    position = confidence.masked_fill(~masked, -torch.inf).argmax(-1)
    return tokens, position * logits.shape[-1] + tokens.gather(1, position[:, None]).squeeze(1)


@torch.no_grad()
def probe(dlm, prompts, gen_length: int, block: int, steps: int | None = None) -> dict:
    """Disagreement counts of every variant with the plain forward along the plain trajectory."""
    backend = CACHE_BACKENDS[dlm.info.family]
    mask_id = dlm.tokenizer.mask_token_id
    ids, prompt_attention = left_pad(prompts, dlm.tokenizer.pad_token_id)
    batch, prompt_len = ids.shape
    x = torch.cat([ids, torch.full((batch, gen_length), mask_id)], 1).to(dlm.device)
    attention = torch.cat([prompt_attention, torch.ones((batch, gen_length), dtype=torch.long)], 1)
    attention = attention.to(dlm.device)
    length = x.shape[1]
    blocks = gen_length // block
    steps = steps or gen_length
    counts = {v: {"tokens": 0, "commits": 0} for v in VARIANTS}
    totals = {"tokens": 0, "commits": 0}

    def level_of(state):
        return (state[:, prompt_len:] == mask_id).sum(1).float() / gen_length

    for b in range(blocks):
        start, end = prompt_len + b * block, prompt_len + (b + 1) * block
        x0, level0 = x.clone(), level_of(x)
        first = True
        for count in transfer_counts(block, steps // blocks):
            if count == 0:
                continue
            level = level_of(x)
            logits = dlm(x, level, attention)
            masked = x[:, start:end] == mask_id
            if not first:
                plain, plain_commit = _decision(logits[:, start:end], masked)
                reads = {}
                _, stale = backend.record(dlm, x0, level0, attention)
                _, ctx_stale = backend.record(dlm, x0, level, attention)
                _, lvl_stale = backend.record(dlm, x, level0, attention)
                _, fresh = backend.record(dlm, x, level, attention)
                window = x[:, start:end]
                reads["dual"] = backend.read(dlm, window, start, level, attention, stale)
                tail = backend.read(dlm, x[:, start:], start, level, attention, stale)
                reads["prefix"] = tail[:, : end - start]
                reads["dual, context stale"] = backend.read(
                    dlm, window, start, level, attention, ctx_stale
                )
                reads["dual, level stale"] = backend.read(
                    dlm, window, start, level, attention, lvl_stale
                )
                reads["dual, refreshed"] = backend.read(dlm, window, start, level, attention, fresh)
                totals["tokens"] += int(masked.sum())
                totals["commits"] += batch
                for name, read in reads.items():
                    tokens, commit = _decision(read, masked)
                    counts[name]["tokens"] += int(((tokens != plain) & masked).sum())
                    counts[name]["commits"] += int((commit != plain_commit).sum())
            first = False
            # the plain rule: commit the most confident masked positions of the block
            tokens = logits.argmax(-1)
            confidence = torch.softmax(logits.float(), -1).gather(-1, tokens[..., None])[..., 0]
            eligible = x == mask_id
            eligible[:, end:] = False
            eligible[:, :start] = False
            chosen = confidence.masked_fill(~eligible, -torch.inf).topk(count, dim=1).indices
            commit = torch.zeros_like(eligible).scatter_(1, chosen, True) & eligible
            x = torch.where(commit, tokens, x)
    del length
    return {"counts": counts, "totals": totals}


def main() -> None:
    from harness.lmeval import load_adapted
    from results.store import RECORD_NAME, read_record
    from tasks import evaluate as task_eval
    from tasks.registry import get_task
    from tasks.sources import load_task_data

    parser = argparse.ArgumentParser()
    parser.add_argument("cells", nargs="+", type=Path)
    parser.add_argument("--gen-length", type=int, default=16)
    parser.add_argument("--block", type=int, default=4)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"gen {args.gen_length} block {args.block} load {os.getloadavg()}")
    for cell in args.cells:
        record = read_record(cell / RECORD_NAME)
        spec = get_task(record.config["task"])
        examples = load_task_data(spec, seed=record.seed, limit=args.limit).test.examples
        dlm, _, _ = load_adapted(None, cell, "cpu")
        template = record.config["eval"]["template"]
        texts = task_eval.generation_prompts(spec, examples, template, None)
        prompts = [dlm.tokenizer.encode_prompt(t) for t in texts]
        result = probe(dlm, prompts, args.gen_length, args.block)
        totals = result["totals"]
        for name, c in result["counts"].items():
            print(
                f"  {record.method:5s} {spec.name:20s} {name:22s} "
                f"argmax differs {100 * c['tokens'] / max(1, totals['tokens']):5.2f}%  "
                f"next commit differs {100 * c['commits'] / max(1, totals['commits']):5.2f}%",
                flush=True,
            )


if __name__ == "__main__":
    main()
