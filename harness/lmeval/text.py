"""Text helpers of the request types: rolling likelihood windows and stop strings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def rolling_windows(ids: Sequence[int], max_length: int) -> list[tuple[list[int], list[int]]]:
    """(prefix, target) windows that score every token exactly once: the first ``max_length``
    tokens with no prefix, then steps of ``max_length // 2`` tokens, each with the preceding
    ``max_length - step`` tokens as context."""
    ids = list(ids)
    if not ids:
        return []
    windows = [([], ids[:max_length])]
    step = max(1, max_length // 2)
    for start in range(max_length, len(ids), step):
        target = ids[start : start + step]
        windows.append((ids[max(0, start - (max_length - len(target))) : start], target))
    return windows


def _stop_strings(until: Any) -> list[str]:
    if until is None:
        return []
    if isinstance(until, str):
        return [until]
    return [s for s in until if isinstance(s, str) and s]


def cut_at_stop(text: str, until: Sequence[str]) -> str:
    """``text`` up to the earliest occurrence of any stop string."""
    cut = len(text)
    for stop in until:
        if stop:
            at = text.find(stop)
            if at != -1:
                cut = min(cut, at)
    return text[:cut]
