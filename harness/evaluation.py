"""Evaluation of one adapted model on one task: the task's protocol with explicit sampler
settings (generation) or the Monte Carlo estimator (log-likelihood multiple choice).

Scoring itself belongs to the task registry; this module only produces the model's outputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from harness.config import EvalConfig
from harness.likelihood import LikelihoodConfig, estimate_loglikelihood
from harness.models.dlm import DiffusionLM
from harness.sampling import SamplerConfig, SamplingStats, generate
from harness.train import autocast_for


@dataclass
class EvalOutcome:
    score: object  # tasks.evaluate.TaskScore
    steps: int | None
    eval_time_s: float
    # rows x denoising forwards that actually ran (a step that commits nothing runs none, a row
    # that already stopped is not in the forward): the time per sampling step divides by this
    sampling_steps: int = 0
    sampling_time_s: float = 0.0
    predictions_file: str = ""  # set by the cell when it writes the predictions
    sampler: str | None = None  # the fast-sampling label, generative protocol only
    sampling: SamplingStats | None = None

    @property
    def time_per_sampling_step_s(self) -> float | None:
        return self.sampling_time_s / self.sampling_steps if self.sampling_steps else None


def chat_fn_for(dlm: DiffusionLM):
    return lambda messages: dlm.tokenizer.chat(messages[-1]["content"])


def resolve_protocol(spec, config: EvalConfig) -> str:
    return spec.default_protocol if config.protocol == "auto" else config.protocol


def sampler_config(config: EvalConfig, steps: int) -> SamplerConfig:
    return SamplerConfig(
        gen_length=config.gen_length,
        steps=steps,
        block_length=config.block_length,
        temperature=config.temperature,
        remasking=config.remasking,
        cfg_scale=config.cfg_scale,
        schedule=config.schedule,
        noise_level=config.noise_level,
        cache=config.cache,
        parallel=config.parallel,
        cache_refresh=config.cache_refresh,
    )


def evaluate(
    dlm: DiffusionLM,
    spec,
    examples: Sequence,
    config: EvalConfig,
    steps: int | None,
    seed: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> EvalOutcome:
    from tasks import evaluate as task_eval

    if dlm.family.noise_process == "uniform":  # DiffusionGemma: its own generate, no loglik
        from harness.evaluation_uniform import evaluate_uniform

        return evaluate_uniform(dlm, spec, examples, config, steps, seed, on_progress)
    protocol = resolve_protocol(spec, config)
    start = time.perf_counter()
    if protocol == "loglik":
        score = _loglik(dlm, spec, examples, config, seed, on_progress)
        return EvalOutcome(score, None, time.perf_counter() - start)
    steps = steps or config.gen_length
    sampler = sampler_config(config, steps)
    prompts = task_eval.generation_prompts(spec, examples, config.template, chat_fn_for(dlm))
    encoded = [dlm.tokenizer.encode_prompt(p) for p in prompts]
    # Similar lengths together: less left padding per batch. Results are reordered back.
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    outputs: list[str] = [""] * len(encoded)
    generator = torch.Generator().manual_seed(seed)
    stats = SamplingStats()
    done = 0
    for start_i in range(0, len(order), config.batch_size):
        chunk = order[start_i : start_i + config.batch_size]
        with autocast_for(dlm.device):
            generated = generate(
                dlm, [encoded[i] for i in chunk], sampler, generator=generator, stats=stats
            )
        for i, ids in zip(chunk, generated, strict=True):
            outputs[i] = dlm.tokenizer.decode(ids)
        done += len(chunk)
        if on_progress is not None:
            on_progress(done, len(order))
    score = task_eval.score_generations(spec, examples, outputs)
    elapsed = time.perf_counter() - start
    return EvalOutcome(
        score,
        steps,
        elapsed,
        sampling_steps=stats.row_forwards,
        sampling_time_s=stats.time_s,
        sampler=sampler.label,
        sampling=stats,
    )


def _loglik(dlm, spec, examples, config: EvalConfig, seed: int, on_progress):
    from tasks import evaluate as task_eval

    requests = task_eval.loglik_requests(spec, examples, config.template, chat_fn_for(dlm))
    mc = LikelihoodConfig(mc_num=config.mc_num, batch_size=config.mc_batch_size, seed=seed)
    tok = dlm.tokenizer
    rows = []
    for n, pairs in enumerate(requests, start=1):
        with autocast_for(dlm.device):
            rows.append(
                [
                    estimate_loglikelihood(dlm, tok.encode_prompt(c), tok.encode(x), mc).loglik
                    for c, x in pairs
                ]
            )
        if on_progress is not None:
            on_progress(n, len(requests))
    return task_eval.score_loglik(spec, examples, rows)
