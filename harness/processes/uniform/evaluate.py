"""Evaluation for uniform-noise families (DiffusionGemma): the task's generation protocol,
sampled by transformers' own ``generate`` (:mod:`harness.processes.uniform.sampler`).

Likelihood scoring is not offered: bench's Monte Carlo estimator is the masked-diffusion ELBO
(a mask token, 1/t weights), which does not hold for uniform renoising, and the model's
self-conditioning makes its denoiser two-pass; so ``loglik`` stops with one line, and choice
tasks that also have a ``gen`` protocol are evaluated with ``eval.protocol=gen``.

The sampling steps (``--steps``, by default ``eval.gen_length`` as for every family) become
``max_denoising_steps`` per canvas, ``eval.gen_length`` is ``max_new_tokens``; the sampler's
other settings (entropy bound, temperature schedule, stopping thresholds) are the model's own
``generation_config``, and transformers' defaults for what it leaves unset
(:func:`harness.processes.uniform.sampler.resolve_generation`). The masked-diffusion sampler's settings (block length, remasking,
temperature, cfg, schedule) do not apply and are not read; its fast-sampling settings
(``eval.cache``, ``eval.parallel``) stop with one line. ``eval.noise_level`` picks the
level the adapters are fed: ``drawn`` (also what the masking default ``response`` means here)
or ``schedule`` (see :mod:`harness.processes.uniform.forward`).

Everything here that refuses a cell only refuses it after its training; :func:`preflight` asks
the same questions of every cell before any cell starts.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.config.cell import CellConfig, EvalConfig
from harness.ground.errors import BenchError
from harness.models.diffusion_gemma import GENERATION_FILE, saved_generation_config
from harness.models.loader import model_folder
from harness.processes.outcome import generation_outcome, resolve_protocol
from harness.processes.uniform.sampler import (
    GemmaSamplingConfig,
    generate_canvas,
    resolve_generation,
)

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


def _refuse_loglik(spec, protocol: str) -> None:
    if protocol == "loglik":
        other = " (set eval.protocol=gen)" if "gen" in spec.protocols else ""
        raise BenchError(
            f"task {spec.name!r}: likelihood scoring is not supported for uniform-noise "
            f"DiffusionGemma (no ELBO estimator for uniform renoising in bench){other}"
        )


def preflight(
    cell: CellConfig, steps: Sequence[int] = (), variants: Sequence[dict] = ()
) -> str | None:
    """What evaluating ``cell`` would refuse after its training, asked before any cell runs:
    its evaluation settings (each sampler variant and step count the run evaluates), each
    evaluated task's protocol, and the sampler settings of the model's saved generation config
    (read without the weights; a model not here yet is checked when it samples)."""
    from tasks.registry import get_task

    try:
        for task in cell.evaluated_tasks:
            spec = get_task(task)
            _refuse_loglik(spec, resolve_protocol(spec, cell.eval))
        folder = model_folder(cell.model)
        saved = saved_generation_config(folder) if folder is not None else None
        for variant in variants or [None]:
            config = cell.eval.with_sampler(variant)
            for step in steps or [None]:
                sampling = uniform_sampling_config(config, step, cell.seed)
                if saved is not None:
                    resolve_generation(saved, sampling, str(folder / GENERATION_FILE))
    except BenchError as err:
        return f"{cell.model}: {err}"
    return None


def evaluate_uniform(dlm, spec, examples, config, steps, seed, protocol, on_progress):
    """The generation protocol through DiffusionGemma's own ``generate``; ``loglik`` stops."""
    _refuse_loglik(spec, protocol)
    sampling = uniform_sampling_config(config, steps, seed)

    def generate_batch(prompts, stats):
        return generate_canvas(dlm, prompts, sampling, stats)[0]

    label = f"diffusion_gemma.generate(noise_level={sampling.noise_level})"
    return generation_outcome(
        dlm, spec, examples, config, steps, generate_batch, label, on_progress
    )
