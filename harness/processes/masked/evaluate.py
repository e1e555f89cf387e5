"""Evaluation on a masked-diffusion base: bench's block sampler for generation tasks, the Monte
Carlo ELBO (LLaDA's estimator) for log-likelihood multiple choice."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from harness.config.cell import CellConfig, EvalConfig
from harness.ground.errors import BenchError
from harness.processes.masked.likelihood import LikelihoodConfig, estimate_loglikelihood
from harness.processes.masked.sampling import SamplerConfig, generate
from harness.processes.outcome import generation_outcome, loglik_outcome, resolve_protocol


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
        logits_eos_inf=config.logits_eos_inf,
        confidence_eos_eot_inf=config.confidence_eos_eot_inf,
        alg_temp=config.alg_temp,
        eps=config.eps,
    )


def likelihood_config(config: EvalConfig, seed: int) -> LikelihoodConfig:
    return LikelihoodConfig(
        mc_num=config.mc_num,
        batch_size=config.mc_batch_size,
        seed=seed,
        masks=config.mc_masks,
        cfg_scale=config.cfg_scale,
    )


def preflight(
    cell: CellConfig, steps: Sequence[int] = (), variants: Sequence[dict] = ()
) -> str | None:
    """What evaluating ``cell`` would refuse after its training, asked before any cell runs:
    the sampler built for every fast-sampling variant and step count the run evaluates, where a
    task is scored by generation, and the Monte Carlo likelihood's settings, where by loglik."""
    from tasks.registry import get_task

    try:
        protocols = {resolve_protocol(get_task(t), cell.eval) for t in cell.evaluated_tasks}
        if "loglik" in protocols:
            likelihood_config(cell.eval, cell.seed)
        if protocols - {"loglik"}:
            for variant in variants or [None]:
                config = cell.eval.with_sampler(variant)
                for step in steps or [config.gen_length]:
                    sampler_config(config, step)
    except BenchError as err:
        return f"{cell.model}: {err}"
    return None


def evaluate_masked(dlm, spec, examples, config, steps, seed, protocol, on_progress):
    """bench's masked-diffusion sampler (generation) or Monte Carlo ELBO (likelihood)."""
    if protocol == "loglik":
        mc = likelihood_config(config, seed)

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
