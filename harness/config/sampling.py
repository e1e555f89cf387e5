"""The fast-sampling settings as text (grid values, lm-eval model args, CLI options) and parsed.

``cache``: ``none | prefix | dual``; ``parallel``: ``none | threshold:X | factor:X |
fastdllm-threshold:X | fastdllm-factor:X``; ``cache_refresh``: ``block | step-level-change:X``.
Bad text fails with one line naming what is valid, before any model is loaded.

The ``fastdllm-`` rules are Fast-dLLM's own (:mod:`harness.processes.masked.sampling.parallel`): they decode each
block until it is full and ignore ``steps``, which the sampler's label and record say.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.ground.errors import BenchError

CACHE_MODES = ("none", "prefix", "dual")
PARALLEL_HELP = (
    "none, threshold:X or fastdllm-threshold:X with X in (0, 1], "
    "factor:X or fastdllm-factor:X with X > 0"
)
# Fast-dLLM's rules (NVlabs/Fast-dLLM llada/generate.py): each block until full, steps ignored
STEP_FREE_RULES = ("fastdllm-threshold", "fastdllm-factor")
REFRESH_HELP = "block, step-level-change:X with X in (0, 1]"
DEFAULTS = {"cache": "none", "parallel": "none", "cache_refresh": "block"}


@dataclass(frozen=True)
class ParallelRule:
    """How many masked tokens of the block one step commits (see :mod:`harness.processes.masked.sampling.parallel`)."""

    kind: str  # "none" (the schedule's fixed count) | "threshold" | "factor" | STEP_FREE_RULES
    value: float | None = None

    @property
    def ignores_steps(self) -> bool:
        """Fast-dLLM's rules run each block until it is full, whatever ``steps`` says."""
        return self.kind in STEP_FREE_RULES


@dataclass(frozen=True)
class RefreshRule:
    """When a cache recorded earlier in the block is recorded again."""

    kind: str  # "block" (only at each block's first step) | "step-level-change"
    delta: float | None = None  # refresh a row when its noise level moved by more than this


def _split(text: str, what: str, valid: str) -> tuple[str, float | None]:
    name, sep, value = str(text).strip().partition(":")
    if not sep:
        return name, None
    try:
        return name, float(value)
    except ValueError:
        raise BenchError(f"{what} {text!r} has no number after ':'; valid: {valid}") from None


def parse_cache(text: str) -> str:
    if text not in CACHE_MODES:
        raise BenchError(f"cache {text!r} is not one of: {', '.join(CACHE_MODES)}")
    return text


def parse_parallel(text: str) -> ParallelRule:
    name, value = _split(text, "parallel", PARALLEL_HELP)
    if name == "none" and value is None:
        return ParallelRule("none")
    if name in ("threshold", "fastdllm-threshold") and value is not None and 0 < value <= 1:
        return ParallelRule(name, value)
    if name in ("factor", "fastdllm-factor") and value is not None and value > 0:
        return ParallelRule(name, value)
    raise BenchError(f"parallel {text!r} is not valid; valid: {PARALLEL_HELP}")


def parse_refresh(text: str) -> RefreshRule:
    name, value = _split(text, "cache_refresh", REFRESH_HELP)
    if name == "block" and value is None:
        return RefreshRule("block")
    if name == "step-level-change" and value is not None and 0 < value <= 1:
        return RefreshRule("step-level-change", value)
    raise BenchError(f"cache_refresh {text!r} is not valid; valid: {REFRESH_HELP}")


def sampler_label(
    cache: str = "none",
    parallel: str = "none",
    cache_refresh: str = "block",
    l2d_steps: int | None = None,
    solver: str | None = None,
) -> str:
    """A short stable name of the fast-sampling settings: ``plain`` when none is used, else e.g.
    ``cache=dual,parallel=threshold:0.9`` (the refresh rule only where a cache uses it). L2D's
    flow: ``flow=midpoint:7`` (``flow=dopri5`` for an adaptive solver, which ignores the steps)."""
    parts = []
    if solver is not None:
        from methods.l2d.solve import FIXED_SOLVERS

        parts.append(f"flow={solver}:{l2d_steps}" if solver in FIXED_SOLVERS else f"flow={solver}")
    if cache != "none":
        parts.append(f"cache={cache}")
        if cache_refresh != "block":
            parts.append(f"refresh={cache_refresh}")
    if parallel != "none":
        parts.append(f"parallel={parallel}")
    return ",".join(parts) or "plain"
