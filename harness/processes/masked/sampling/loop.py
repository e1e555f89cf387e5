"""The batched block semi-autoregressive sampler (LLaDA's scheme) with optional cache and
parallel commit rule.

Before every forward it sets each example's noise level, so noise-aware adapters see at sampling
time the same quantity they were trained on: by default the masked fraction of that example's
response region. With a cache, positions outside the computed window keep the keys and values of
the forward that recorded them, computed under that forward's level (``cache_refresh`` bounds how
far a row's level may move before its cache is recorded again).

With ``cache=none, parallel=none`` every operation is the plain sampler's, in the same order, so
its tokens are exactly the plain sampler's, and LLaDA's ``generate``'s. Fast-dLLM's rules
(``parallel=fastdllm-...``) repeat a block's step until the block is full, whatever ``steps``
says. Dream's algorithms (``remasking=origin|maskgit_plus|topk_margin|entropy``) run Dream's own
loop (:mod:`harness.processes.masked.sampling.dream`).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence

import torch

from harness.ground.errors import BenchError
from harness.models.dlm import DiffusionLM
from harness.processes.masked.sampling.cache import BlockCache, backend_for, window_bounds
from harness.processes.masked.sampling.confidence import (
    candidate_confidence,
    confidence_dtype,
    end_ids,
    suppress_eos,
)
from harness.processes.masked.sampling.config import SamplerConfig
from harness.processes.masked.sampling.dream import generate_dream
from harness.processes.masked.sampling.parallel import commit_mask
from harness.processes.masked.sampling.schedule import transfer_counts
from harness.processes.sampler_stats import SamplingStats


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        if len(p):
            ids[i, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
            attention[i, width - len(p) :] = 1
    return ids, attention


def _candidates(logits: torch.Tensor, temperature: float, generator) -> torch.Tensor:
    if temperature == 0:
        return logits.argmax(dim=-1)
    u = torch.rand(logits.shape, generator=generator, dtype=torch.float64).to(logits.device)
    gumbel = -torch.log(-torch.log(u.clamp_min(1e-20)))
    return (logits.double() / temperature + gumbel).argmax(dim=-1)


@torch.no_grad()
def generate(
    dlm: DiffusionLM,
    prompts: Sequence[Sequence[int]],
    config: SamplerConfig = SamplerConfig(),
    generator: torch.Generator | None = None,
    on_step: Callable[[int], None] | None = None,
    stats: SamplingStats | None = None,
) -> list[list[int]]:
    """Generate a response for every prompt; each is cut before its first EOS.

    ``stats`` (optional) accumulates the forwards, decoded tokens and time this call used."""
    if dlm.info.shift_logits and any(len(p) == 0 for p in prompts):
        raise BenchError(
            f"{dlm.info.name}: an empty prompt leaves position 0 to generate, which a "
            "shifted-logit model (Dream) cannot predict; prompts start with BOS (encode_prompt)"
        )
    stats = stats if stats is not None else SamplingStats()
    stats.notes = tuple(dict.fromkeys((*stats.notes, *config.notes)))
    if config.is_dream:
        padded = left_pad(prompts, dlm.tokenizer.pad_token_id)
        return generate_dream(dlm, *padded, config, generator, on_step, stats)
    began = time.perf_counter()
    ends = end_ids(dlm, config)
    backend = backend_for(dlm, config.cache)
    stats.cache_used = config.cache if backend is not None else "none"
    rule = config.parallel_rule
    mask_id, eos_id = dlm.tokenizer.mask_token_id, dlm.tokenizer.eos_token_id
    device = dlm.device
    prompt_ids, prompt_attention = left_pad(prompts, dlm.tokenizer.pad_token_id)
    batch, prompt_len = prompt_ids.shape
    gen = config.gen_length
    x = torch.cat([prompt_ids, torch.full((batch, gen), mask_id, dtype=torch.long)], 1).to(device)
    attention = torch.cat([prompt_attention, torch.ones((batch, gen), dtype=torch.long)], 1)
    attention = attention.to(device)
    seq_len = attention.sum(dim=1).float()
    active = torch.arange(batch, device=device)
    step_index = 0

    def levels(xa: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        masked_response = (xa[:, prompt_len:] == mask_id).sum(dim=1).float()
        if config.noise_level == "response":
            return masked_response / gen
        return masked_response / seq_len[rows]

    for block, block_steps in enumerate(config.steps_per_block()):
        start = prompt_len + block * config.block_length
        end = start + config.block_length
        cache: BlockCache | None = None
        for count in _step_counts(config, block_steps):
            step_index += 1
            if on_step is not None:
                on_step(step_index)
            if count == 0 and rule.kind == "none":
                continue
            rows = active
            if rule.kind != "none":  # rows whose block is already done sit the step out
                rows = active[(x[active, start:end] == mask_id).any(dim=1)]
                if rows.numel() == 0:
                    break
            xa, att = x[rows], attention[rows]
            is_mask = xa == mask_id
            eligible = is_mask.clone()
            eligible[:, end:] = False
            level = levels(xa, rows)
            if backend is None:
                logits = _denoise(dlm, xa, att, level, prompt_len, config.cfg_scale)
                stats.add_forward(len(rows))
                suppress_eos(logits, config, ends[0])
                x0 = _candidates(logits, config.temperature, generator)
                confidence = _confidence(logits, x0, config, generator, eligible, ends)
            else:
                x0, confidence, cache = _cached_step(
                    dlm,
                    backend,
                    config,
                    cache,
                    x,
                    rows,
                    level,
                    attention,
                    (start, end),
                    stats,
                    generator,
                    ends,
                )
                if config.temperature > 0 or config.remasking != "low_confidence":
                    confidence = _confidence_placed(confidence, config, generator, device)
            confidence = confidence.masked_fill(~eligible, -math.inf)
            commit = commit_mask(confidence, eligible, count, rule)
            stats.tokens += int(commit.sum())
            x[rows] = torch.where(commit, x0, xa)
        if config.stop_at_eos:
            done = (x[active, prompt_len:end] == eos_id).any(dim=1)
            if bool(done.any()):
                finished = active[done]
                x[finished, end:] = eos_id
                active = active[~done]
            if active.numel() == 0:
                break

    stats.time_s += time.perf_counter() - began
    outputs = []
    for row in x[:, prompt_len:].tolist():
        outputs.append(row[: row.index(eos_id)] if eos_id in row else row)
    return outputs


def _step_counts(config: SamplerConfig, block_steps: int):
    """The schedule's count per step; Fast-dLLM's rules step until the block is full instead."""
    if config.parallel_rule.ignores_steps:
        return itertools.repeat(0)
    return transfer_counts(config.block_length, block_steps, config.schedule)


def _confidence(logits, x0, config: SamplerConfig, generator, eligible, ends) -> torch.Tensor:
    """Confidence over the full width: the candidates' probabilities at the eligible positions
    (masked, before the block's end: a position of an earlier block whose candidate was the mask
    token itself stays eligible, as in LLaDA's ``generate``), ``-inf`` elsewhere. Random
    remasking draws over the full width, as LLaDA's ``generate`` does."""
    if config.remasking == "low_confidence":
        dtype = confidence_dtype(config, cached=False)
        out = torch.full(x0.shape, -math.inf, device=x0.device, dtype=dtype)
        out[eligible] = candidate_confidence(logits[eligible], x0[eligible], config, ends, False)
        return out
    return torch.rand(x0.shape, generator=generator).to(x0.device)


def _confidence_placed(confidence, config: SamplerConfig, generator, device) -> torch.Tensor:
    """Random remasking draws its confidences over the full width, as the plain sampler does."""
    if config.remasking == "low_confidence":
        return confidence
    return torch.rand(confidence.shape, generator=generator).to(device)


def _cached_step(
    dlm, backend, config, cache, x, rows, level, attention, bounds, stats, generator, ends
):
    """One step with a cache: candidates and confidences over the full width (``-inf`` and the
    current token outside the computed window). Records the cache at the block's first step and
    for rows whose level moved past the refresh rule's bound; every other row reads it."""
    start, end = bounds
    batch, length = x.shape
    x0 = x[rows].clone()
    dtype = confidence_dtype(config, cached=True)
    confidence = torch.full(x0.shape, -math.inf, device=x.device, dtype=dtype)

    def place(where: torch.Tensor, logits: torch.Tensor, offset: int) -> None:
        window = suppress_eos(logits[:, start - offset : end - offset], config, ends[0])
        chosen = _candidates(window, config.temperature, generator)
        x0[where, start:end] = chosen
        confidence[where, start:end] = candidate_confidence(window, chosen, config, ends, True)

    if cache is None:
        logits, data = backend.record(dlm, x[rows], level, attention[rows])
        stats.add_forward(len(rows))
        place(torch.arange(len(rows), device=x.device), logits, 0)
        return x0, confidence, BlockCache(data, rows.clone(), level.clone())
    positions = cache.positions(rows, batch)
    stale = torch.zeros(len(rows), dtype=torch.bool, device=x.device)
    if config.refresh_rule.kind == "step-level-change":
        stale = (level - cache.levels[positions]).abs() > config.refresh_rule.delta
    if bool(stale.any()):
        again = stale.nonzero().squeeze(1)
        logits, data = backend.record(dlm, x[rows[again]], level[again], attention[rows[again]])
        stats.add_forward(len(again))
        stats.refreshes += 1
        backend.assign(cache.data, positions[again], data)
        cache.levels[positions[again]] = level[again]
        place(again, logits, 0)
    fresh = (~stale).nonzero().squeeze(1)
    if fresh.numel():
        lo, hi = window_bounds(config.cache, start, end, length)
        keep = positions[fresh]
        whole = keep.numel() == len(cache.rows) and bool(
            (keep == torch.arange(len(cache.rows), device=x.device)).all()
        )
        data = cache.data if whole else backend.select(cache.data, keep)
        chosen_rows = rows[fresh]
        logits = backend.read(
            dlm, x[chosen_rows, lo:hi], lo, level[fresh], attention[chosen_rows], data
        )
        stats.add_forward(len(fresh))
        place(fresh, logits, lo)
    return x0, confidence, cache


def _denoise(dlm, x, attention, level, prompt_len: int, cfg_scale: float) -> torch.Tensor:
    if cfg_scale <= 0:
        return dlm(x, level, attention)
    unconditional = x.clone()
    unconditional[:, :prompt_len] = torch.where(
        attention[:, :prompt_len].bool(), dlm.tokenizer.mask_token_id, x[:, :prompt_len]
    )
    both = dlm(torch.cat([x, unconditional]), torch.cat([level, level]), torch.cat([attention] * 2))
    cond, uncond = both.chunk(2)
    return uncond + (cfg_scale + 1) * (cond - uncond)
