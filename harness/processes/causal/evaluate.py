"""Evaluation of an autoregressive base (adapted or not) on one task: greedy decoding for
generative tasks, the exact log-likelihood for multiple choice. With L2D, ``eval.l2d_steps`` and
``eval.solver`` set how the flow is integrated per token; the outcome records its sampler label
(``flow=<solver>:<steps>``) and the flow evaluations per token."""

from __future__ import annotations

import torch

from harness.config.sampling import sampler_label
from harness.processes.causal.decode import greedy_generate
from harness.processes.causal.likelihood import causal_loglikelihood
from harness.processes.outcome import generation_outcome, loglik_outcome


def flow_settings(dlm, config, seed: int):
    """The flow's integration settings for an L2D backbone; None for every other model."""
    if not getattr(dlm.backbone, "flow_conditioned", False):
        return None
    from methods.l2d.solve import FlowSettings

    generator = torch.Generator().manual_seed(seed)
    return FlowSettings(steps=config.l2d_steps, solver=config.solver, generator=generator)


def label_for(config, settings) -> str:
    """The same label the cell computes for this evaluation's settings (harness.run.cell._label)."""
    flow = {} if settings is None else {"l2d_steps": settings.steps, "solver": settings.solver}
    return sampler_label(config.cache, config.parallel, config.cache_refresh, **flow)


def evaluate_causal(dlm, spec, examples, config, steps, seed, protocol, on_progress):
    """Greedy decoding (generation) or the exact log-likelihood (choice), L2D's flow integrated
    with the evaluation's settings."""
    settings = flow_settings(dlm, config, seed)
    if protocol == "loglik":

        def loglik(context, x):
            return causal_loglikelihood(dlm, context, x, settings).loglik

        return loglik_outcome(dlm, spec, examples, config, loglik, on_progress)

    def generate_batch(prompts, stats):
        return greedy_generate(dlm, prompts, config.gen_length, settings, stats)

    label = label_for(config, settings)
    steps = steps or config.gen_length
    return generation_outcome(
        dlm, spec, examples, config, steps, generate_batch, label, on_progress
    )
