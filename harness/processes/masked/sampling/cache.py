"""Block-wise approximate KV cache (Fast-dLLM's prefix and dual cache) behind one interface.

At a block's first step the sampler runs the whole sequence once and records every layer's keys
and values (``record``). Until the cache is recorded again, later steps of the block run only a
window (``read``): ``prefix`` runs the current block and everything after it, with the prompt and
finished blocks from the cache; ``dual`` runs only the current block, with the masked suffix from
the cache too. Cached keys and values are approximate: they were computed from an earlier state of
the sequence and, for a noise-aware adapter, under an earlier noise level.

A backend says how one model family records and reads a cache (``Family.cache_backend``: the
tiny model's own path in :mod:`harness.models.tiny`, LLaDA's and Dream's released code in
:mod:`harness.models.released_cache`). A family without one (``generic``) falls back to no cache,
says so in one log line, and the sampler's stats record the cache actually used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from harness.models.dlm import DiffusionLM

log = logging.getLogger(__name__)


class CacheBackend(Protocol):
    def record(self, dlm: DiffusionLM, x, level, attention) -> tuple[torch.Tensor, Any]:
        """Logits over the whole sequence and the cache recorded on the way."""

    def read(self, dlm: DiffusionLM, window, start: int, level, attention, cache) -> torch.Tensor:
        """Logits of ``window`` (positions ``start ...``), every other position from ``cache``."""

    def select(self, cache, rows: torch.Tensor) -> Any: ...

    def assign(self, cache, rows: torch.Tensor, other) -> None: ...


_warned: set[tuple[str, str]] = set()


def backend_for(dlm: DiffusionLM, mode: str) -> CacheBackend | None:
    """The family's backend, or None (with one log line per family and mode) when it has none."""
    if mode == "none":
        return None
    backend = dlm.family.cache_backend
    reason = f"the {dlm.info.family} model family has no cache backend"
    if backend is not None and any(getattr(m, "needs_input_ids", False) for m in dlm.modules()):
        # density conditioning reads the mask layout of the whole input; a window would lie to it
        backend, reason = None, "the adapter conditions on the mask layout of the whole input"
    if backend is None and (reason, mode) not in _warned:
        _warned.add((reason, mode))
        log.warning(
            "cache=%s is not used: %s; sampling without a cache (cache_used=none)", mode, reason
        )
    return backend


def window_bounds(mode: str, start: int, end: int, length: int) -> tuple[int, int]:
    """The positions a cached step runs: ``prefix`` from the block to the end, ``dual`` the block."""
    return (start, length) if mode == "prefix" else (start, end)


@dataclass
class BlockCache:
    """The cache of the current block: which rows it holds and the level each was recorded at."""

    data: Any
    rows: torch.Tensor  # global row indices, in cache order
    levels: torch.Tensor  # noise level of each row when it was recorded

    def positions(self, rows: torch.Tensor, batch: int) -> torch.Tensor:
        lookup = torch.full((batch,), -1, dtype=torch.long, device=self.rows.device)
        lookup[self.rows] = torch.arange(len(self.rows), device=self.rows.device)
        return lookup[rows]
