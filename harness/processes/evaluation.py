"""Evaluation of one adapted model on one task: the task's protocol with explicit sampler
settings (generation) or the Monte Carlo estimator (log-likelihood multiple choice).

Scoring itself belongs to the task registry; this module only produces the model's outputs.
:func:`evaluate` hands a base to the evaluation of its noise process (:func:`evaluator_for`):
:mod:`harness.processes.masked.evaluate`, :mod:`harness.processes.uniform.evaluate` or
:mod:`harness.processes.causal.evaluate`; all of them build the outcome with
:mod:`harness.processes.outcome`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.config.cell import EvalConfig
from harness.models.dlm import DiffusionLM
from harness.processes.outcome import EvalOutcome, resolve_protocol
from harness.processes.registry import process_of


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
    """The evaluation of the base's noise process (its family names the process)."""
    return process_of(dlm).evaluate
