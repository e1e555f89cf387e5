"""Evaluation for uniform-noise families (DiffusionGemma): the task's generation protocol,
sampled by transformers' own ``generate`` (:mod:`harness.sampling.diffusion_gemma`).

Likelihood scoring is not offered: bench's Monte Carlo estimator is the masked-diffusion ELBO
(a mask token, 1/t weights), which does not hold for uniform renoising, and the model's
self-conditioning makes its denoiser two-pass; so ``loglik`` stops with one line, and choice
tasks that also have a ``gen`` protocol are evaluated with ``eval.protocol=gen``.

The sampling steps (``--steps``, by default ``eval.gen_length`` as for every family) become
``max_denoising_steps`` per canvas, ``eval.gen_length`` is ``max_new_tokens``; the sampler's
other settings (entropy bound, temperature schedule, stopping thresholds) are the model's own
``generation_config``. The masked-diffusion sampler's settings (block length, remasking,
temperature, cfg, schedule) do not apply and are not read; its fast-sampling settings
(``eval.cache``, ``eval.parallel``) stop with one line. ``eval.noise_level`` picks the
level the adapters are fed: ``drawn`` (also what the masking default ``response`` means here)
or ``schedule`` (see :mod:`harness.uniform_noise`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from harness.config import EvalConfig
from harness.errors import BenchError
from harness.sampling import SamplingStats
from harness.sampling.diffusion_gemma import GemmaSamplingConfig, generate_canvas
from harness.train import autocast_for

LEVEL_NAMES = {"drawn": "drawn", "response": "drawn", "schedule": "schedule"}


def uniform_sampling_config(
    config: EvalConfig, steps: int | None, seed: int
) -> GemmaSamplingConfig:
    if config.noise_level not in LEVEL_NAMES:
        raise BenchError(
            f"eval.noise_level {config.noise_level!r} does not apply to uniform noise; "
            "valid: drawn (default; also 'response'), schedule"
        )
    fast = {"eval.cache": config.cache, "eval.parallel": config.parallel}
    for name, value in fast.items():
        if value != "none":
            raise BenchError(
                f"{name}={value} is a masked-diffusion sampler setting; DiffusionGemma samples "
                f"with its own generate: valid: none"
            )
    return GemmaSamplingConfig(
        max_new_tokens=config.gen_length,
        max_denoising_steps=steps,
        noise_level=LEVEL_NAMES[config.noise_level],
        seed=seed,
    )


def evaluate_uniform(
    dlm,
    spec,
    examples: Sequence,
    config: EvalConfig,
    steps: int | None,
    seed: int,
    on_progress: Callable[[int, int], None] | None = None,
):
    from harness.evaluation import EvalOutcome, chat_fn_for, resolve_protocol
    from tasks import evaluate as task_eval

    protocol = resolve_protocol(spec, config)
    if protocol == "loglik":
        other = " (set eval.protocol=gen)" if "gen" in spec.protocols else ""
        raise BenchError(
            f"task {spec.name!r}: likelihood scoring is not supported for uniform-noise "
            f"DiffusionGemma (no ELBO estimator for uniform renoising in bench){other}"
        )
    sampling = uniform_sampling_config(config, steps, seed)
    start = time.perf_counter()
    prompts = task_eval.generation_prompts(spec, examples, config.template, chat_fn_for(dlm))
    encoded = [dlm.tokenizer.encode_prompt(p) for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    outputs: list[str] = [""] * len(encoded)
    stats = SamplingStats()
    for start_i in range(0, len(order), config.batch_size):
        chunk = order[start_i : start_i + config.batch_size]
        with autocast_for(dlm.device):
            generated, _ = generate_canvas(dlm, [encoded[i] for i in chunk], sampling, stats)
        for i, ids in zip(chunk, generated, strict=True):
            outputs[i] = dlm.tokenizer.decode(ids)
        if on_progress is not None:
            on_progress(start_i + len(chunk), len(order))
    score = task_eval.score_generations(spec, examples, outputs)
    label = f"diffusion_gemma.generate(noise_level={sampling.noise_level})"
    return EvalOutcome(
        score,
        steps,
        time.perf_counter() - start,
        sampling_steps=stats.row_forwards,
        sampling_time_s=stats.time_s,
        sampler=label,
        sampling=stats,
    )
