"""Where a cell gets its base model: loaded fresh (the default), or from a worker's cache.

A cell asks :func:`checkout_model` for its base instead of calling ``load_model`` itself. Outside
an executor nothing is installed and every checkout loads the model, exactly as before. A worker
that runs cell after cell installs its base-model cache for the duration of one cell
(:func:`use_models`), so a second cell on the same base skips the load; the cache restores and
checks the base after the cell (``harness/run/executors/model_cache.py``).

Why a context variable and not a ``run_cell`` argument: ``run_cell``'s signature is the contract
every method's cells run through (and tests replace it); the model's origin is the worker's
business, not the cell's.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from typing import Protocol

from harness.models.dlm import DiffusionLM


class ModelSource(Protocol):
    """Hands out a base model for one cell and takes it back afterwards."""

    last_load_s: float | None  # seconds the latest checkout spent loading (0.0: reused)

    def checkout(self, name: str, device: str) -> DiffusionLM: ...

    def release(self, ok: bool) -> None:
        """The cell is over; ``ok`` False when it raised (its model state is then unknown)."""


class FreshModels:
    """Loads the model on every checkout and forgets it on release (the behaviour before reuse)."""

    def __init__(self) -> None:
        self.last_load_s: float | None = None
        self._held: DiffusionLM | None = None

    def checkout(self, name: str, device: str) -> DiffusionLM:
        from harness.models.loader import load_model

        start = time.perf_counter()
        self._held = load_model(name, device)
        self.last_load_s = time.perf_counter() - start
        return self._held

    def release(self, ok: bool) -> None:
        self._held = None


_current: contextvars.ContextVar[ModelSource | None] = contextvars.ContextVar(
    "bench_model_source", default=None
)


def current_source() -> ModelSource | None:
    return _current.get()


def checkout_model(name: str, device: str = "auto") -> DiffusionLM:
    """The base model ``name`` on ``device``: from the installed source, else loaded fresh."""
    source = _current.get()
    if source is None:
        from harness.models.loader import load_model

        return load_model(name, device)
    return source.checkout(name, device)


@contextlib.contextmanager
def use_models(source: ModelSource | None) -> Iterator[ModelSource | None]:
    """Install ``source`` for the cells run inside the block (None: load fresh)."""
    token = _current.set(source)
    try:
        yield source
    finally:
        _current.reset(token)
