"""Evaluation of an autoregressive base (adapted or not) on one task: greedy decoding for
generative tasks, the exact log-likelihood for multiple choice. With L2D, ``eval.l2d_steps`` and
``eval.solver`` set how the flow is integrated per token; the outcome records its sampler label
(``flow=<solver>:<steps>``) and the flow evaluations per token."""

from __future__ import annotations

import time

import torch

from harness.causal.decode import greedy_generate
from harness.causal.likelihood import causal_loglikelihood
from harness.sampling import SamplingStats
from harness.sampling.settings import sampler_label


def flow_settings(dlm, config, seed: int):
    """The flow's integration settings for an L2D backbone; None for every other model."""
    if not getattr(dlm.backbone, "flow_conditioned", False):
        return None
    from methods.l2d.solve import FlowSettings

    generator = torch.Generator().manual_seed(seed)
    return FlowSettings(steps=config.l2d_steps, solver=config.solver, generator=generator)


def label_for(config, settings) -> str:
    """The same label the cell computes for this evaluation's settings (harness.cell._label)."""
    flow = {} if settings is None else {"l2d_steps": settings.steps, "solver": settings.solver}
    return sampler_label(config.cache, config.parallel, config.cache_refresh, **flow)


def evaluate_causal(dlm, spec, examples, config, steps, seed, protocol, on_progress, chat_fn):
    from harness.evaluation import EvalOutcome
    from harness.train import autocast_for
    from tasks import evaluate as task_eval

    start = time.perf_counter()
    settings = flow_settings(dlm, config, seed)
    tok = dlm.tokenizer
    if protocol == "loglik":
        requests = task_eval.loglik_requests(spec, examples, config.template, chat_fn)
        rows = []
        for n, pairs in enumerate(requests, start=1):
            with autocast_for(dlm.device):
                rows.append(
                    [
                        causal_loglikelihood(
                            dlm, tok.encode_prompt(c), tok.encode(x), settings
                        ).loglik
                        for c, x in pairs
                    ]
                )
            if on_progress is not None:
                on_progress(n, len(requests))
        score = task_eval.score_loglik(spec, examples, rows)
        return EvalOutcome(score, None, time.perf_counter() - start)
    steps = steps or config.gen_length
    prompts = task_eval.generation_prompts(spec, examples, config.template, chat_fn)
    encoded = [tok.encode_prompt(p) for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    outputs: list[str] = [""] * len(encoded)
    stats = SamplingStats()
    done = 0
    for begin in range(0, len(order), config.batch_size):
        chunk = order[begin : begin + config.batch_size]
        with autocast_for(dlm.device):
            generated = greedy_generate(
                dlm, [encoded[i] for i in chunk], config.gen_length, settings, stats
            )
        for i, ids in zip(chunk, generated, strict=True):
            outputs[i] = tok.decode(ids)
        done += len(chunk)
        if on_progress is not None:
            on_progress(done, len(order))
    score = task_eval.score_generations(spec, examples, outputs)
    return EvalOutcome(
        score,
        steps,
        time.perf_counter() - start,
        sampling_steps=stats.row_forwards,
        sampling_time_s=stats.time_s,
        sampler=label_for(config, settings),
        sampling=stats,
    )
