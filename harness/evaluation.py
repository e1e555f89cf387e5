"""Evaluation of one adapted model on one task: the task's protocol with explicit sampler
settings (generation) or the Monte Carlo estimator (log-likelihood multiple choice).

Scoring itself belongs to the task registry; this module only produces the model's outputs.
:func:`evaluate` hands a base to the evaluation of its kind (:func:`evaluator_for`): the
masked-diffusion one here, DiffusionGemma's in :mod:`harness.evaluation_uniform`, a causal LM's
in :mod:`harness.causal.evaluate`; all of them build the outcome with :mod:`harness.eval_outcome`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from harness.causal.evaluate import evaluate_causal
from harness.config import EvalConfig
from harness.eval_outcome import (
    EvalOutcome,
    chat_fn_for,
    generation_outcome,
    loglik_outcome,
    resolve_protocol,
)
from harness.evaluation_uniform import evaluate_uniform
from harness.likelihood import LikelihoodConfig, estimate_loglikelihood
from harness.models.dlm import DiffusionLM
from harness.models.family import AUTOREGRESSIVE, MASKED_DIFFUSION
from harness.sampling import SamplerConfig, generate

__all__ = [
    "EvalOutcome",
    "chat_fn_for",
    "evaluate",
    "evaluate_masked",
    "evaluator_for",
    "resolve_protocol",
    "sampler_config",
]  # EvalOutcome, chat_fn_for, resolve_protocol: re-exported from harness.eval_outcome


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
    """The outcome of the task's protocol (``eval.protocol``, or the task's default) with the
    evaluation of the base's kind (:func:`evaluator_for`)."""
    protocol = resolve_protocol(spec, config)
    return evaluator_for(dlm)(dlm, spec, examples, config, steps, seed, protocol, on_progress)


def evaluator_for(dlm):
    """Next-token decoding and exact likelihood on an autoregressive base; on a denoiser, the
    evaluation of its family's noise process (:data:`DENOISING_EVALUATIONS`)."""
    if getattr(dlm, "objective", MASKED_DIFFUSION) == AUTOREGRESSIVE:
        return evaluate_causal
    return DENOISING_EVALUATIONS[dlm.family.noise_process]


def evaluate_masked(dlm, spec, examples, config, steps, seed, protocol, on_progress):
    """bench's masked-diffusion sampler (generation) or Monte Carlo ELBO (likelihood)."""
    if protocol == "loglik":
        mc = LikelihoodConfig(mc_num=config.mc_num, batch_size=config.mc_batch_size, seed=seed)

        def loglik(context, x):
            return estimate_loglikelihood(dlm, context, x, mc).loglik

        return loglik_outcome(dlm, spec, examples, config, loglik, on_progress)
    steps = steps or config.gen_length
    sampler = sampler_config(config, steps)
    generator = torch.Generator().manual_seed(seed)

    def generate_batch(prompts, stats):
        return generate(dlm, prompts, sampler, generator=generator, stats=stats)

    return generation_outcome(
        dlm, spec, examples, config, steps, generate_batch, sampler.label, on_progress
    )


# masking: bench's sampler and Monte Carlo ELBO; uniform: DiffusionGemma's own generate.
DENOISING_EVALUATIONS = {"masking": evaluate_masked, "uniform": evaluate_uniform}
