"""Noise processes by name. A family names its process (:attr:`Family.process`); training,
evaluation, lm-eval and the CLI ask :func:`process_of` instead of branching on the family.

The registry holds module paths, not modules: a process's package is imported the first time it
is asked for, so this module imports none of them (and loading a causal base never imports the
masked sampler, nor the reverse).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.ground.errors import BenchError


@dataclass(frozen=True)
class Process:
    """What one noise process supplies to the shared loops.

    objective: builds the training objective (``micro_loss`` and ``validation_bins``) that
        :func:`harness.processes.training.train_adapter` runs.
    evaluate: ``(dlm, spec, examples, config, steps, seed, protocol, on_progress) -> EvalOutcome``.
    quick_sample: ``(dlm, prompt_ids, sampler_config) -> (ids, summary line)`` for ``bench sample``.
    preflight: ``(cell config, sampling steps, sampler variants) -> problem line or None``:
        what this process would refuse only once the cell has trained (its sampler settings,
        say), asked by the run's preflight before any cell starts; None when nothing needs
        asking.
    """

    name: str
    objective: Callable[[], Any]
    evaluate: Callable[..., Any]
    quick_sample: Callable[..., tuple[list[int], str]]
    preflight: Callable[..., str | None] | None = None


PROCESS_MODULES = {
    "masked": "harness.processes.masked.process",
    "uniform": "harness.processes.uniform.process",
    "causal": "harness.processes.causal.process",
}


def get_process(name: str) -> Process:
    if name not in PROCESS_MODULES:
        raise BenchError(f"unknown noise process {name!r}; valid: {', '.join(PROCESS_MODULES)}")
    return importlib.import_module(PROCESS_MODULES[name]).PROCESS


def process_of(model) -> Process:
    """The process of a loaded base (a DiffusionLM or CausalLM): the one its family names."""
    return get_process(model.family.process)
