"""Greedy autoregressive decoding for causal bases, batched with left padding and a KV cache.

One forward per generated token over the new token only (the prompt once). The backbone decides
how the next token's logits come about (``CausalLM.next_logits``): the base's own head, or L2D's
flow integrated per token. Rows stop at EOS; the loop ends when every row has stopped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from harness.ground.errors import BenchError
from harness.processes.masked.sampling import SamplingStats, left_pad


@torch.no_grad()
def greedy_generate(
    lm,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    settings=None,
    stats: SamplingStats | None = None,
    stop_at_eos: bool = True,
) -> list[list[int]]:
    """Each prompt's continuation (cut before its first EOS), temperature 0. ``stop_at_eos``
    False decodes exactly ``max_new_tokens`` per row (speed measurements)."""
    from transformers import DynamicCache

    if any(len(p) == 0 for p in prompts):
        raise BenchError("an autoregressive base needs a non-empty prompt to predict from")
    began = time.perf_counter()
    stats = stats if stats is not None else SamplingStats()
    device, eos = lm.device, lm.tokenizer.eos_token_id
    ids, attention = left_pad(prompts, lm.tokenizer.pad_token_id)
    ids, attention = ids.to(device), attention.to(device)
    backbone = lm.backbone
    config = getattr(backbone, "config", None)
    base = getattr(backbone, "base", None)
    cache = DynamicCache(config=(base.config if base is not None else config))
    batch = ids.shape[0]
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    out = torch.full((batch, max_new_tokens), eos, dtype=torch.long, device=device)
    step_ids = ids
    for step in range(max_new_tokens):
        logits, flow_evals = lm.next_logits(step_ids, attention, cache, settings)
        active = int((~done).sum())
        stats.add_forward(active)
        stats.flow_evals += flow_evals * active
        token = logits.argmax(dim=-1)
        token = torch.where(done, torch.full_like(token, eos), token)
        out[:, step] = token
        stats.tokens += active
        if stop_at_eos:
            done = done | (token == eos)
        if bool(done.all()):
            break
        step_ids = token[:, None]
        attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
    stats.time_s += time.perf_counter() - began
    results = []
    for row in out.tolist():
        results.append(row[: row.index(eos)] if eos in row else row)
    return results
