"""Evaluation for uniform-noise families (DiffusionGemma): the task's generation protocol,
sampled by transformers' own ``generate`` (:mod:`harness.processes.uniform.sampler`).

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
or ``schedule`` (see :mod:`harness.processes.uniform.forward`).
"""

from __future__ import annotations

from harness.config.cell import EvalConfig
from harness.ground.errors import BenchError
from harness.processes.outcome import generation_outcome
from harness.processes.uniform.sampler import GemmaSamplingConfig, generate_canvas

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


def evaluate_uniform(dlm, spec, examples, config, steps, seed, protocol, on_progress):
    """The generation protocol through DiffusionGemma's own ``generate``; ``loglik`` stops."""
    if protocol == "loglik":
        other = " (set eval.protocol=gen)" if "gen" in spec.protocols else ""
        raise BenchError(
            f"task {spec.name!r}: likelihood scoring is not supported for uniform-noise "
            f"DiffusionGemma (no ELBO estimator for uniform renoising in bench){other}"
        )
    sampling = uniform_sampling_config(config, steps, seed)

    def generate_batch(prompts, stats):
        return generate_canvas(dlm, prompts, sampling, stats)[0]

    label = f"diffusion_gemma.generate(noise_level={sampling.noise_level})"
    return generation_outcome(
        dlm, spec, examples, config, steps, generate_batch, label, on_progress
    )
