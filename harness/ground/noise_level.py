"""The noise-level channel: how a per-example diffusion noise level reaches the adapters.

Every forward of a diffusion LM in this project (training, sampling, likelihood scoring, lm-eval)
goes through :class:`harness.models.dlm.DiffusionLM`, which sets its channel's level right before
calling the backbone. Noise-aware methods subscribe to the channel and compute what they need
(NaRA: one core matrix per example) once per forward; everything else ignores it.

Why a per-model object and not a global or a context variable:
- two models in one process (a base and an adapted copy, two grid cells) never see each other's
  levels;
- the level stays set after the forward returns, so layers recomputed during backward under
  gradient checkpointing read exactly the value their first pass read.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Subscriber = Callable[[torch.Tensor], None]


class NoiseChannel:
    """Holds the current per-example noise level, shape (batch,), values in [0, 1]."""

    def __init__(self) -> None:
        self._level: torch.Tensor | None = None
        self._subscribers: list[Subscriber] = []

    @property
    def level(self) -> torch.Tensor | None:
        return self._level

    def subscribe(self, fn: Subscriber) -> None:
        """Call ``fn(level)`` every time a level is set (inside the caller's forward context)."""
        if fn not in self._subscribers:
            self._subscribers.append(fn)

    def unsubscribe(self, fn: Subscriber) -> None:
        if fn in self._subscribers:
            self._subscribers.remove(fn)

    def set(self, level: torch.Tensor) -> None:
        if level.dim() != 1:
            raise ValueError(f"noise level must have shape (batch,), got {tuple(level.shape)}")
        self._level = level
        for fn in self._subscribers:
            fn(level)

    def clear(self) -> None:
        self._level = None
