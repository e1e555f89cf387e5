"""Seed statistics and paired bootstrap confidence intervals.

The paired difference between a method and the baseline on one task pairs their per-example
correctness by (example id, seed): the same test example, evaluated by the two adapters trained
with the same seed. Only pairs present on both sides count. The 95% interval is a percentile
bootstrap over those pairs (resampled with replacement), seeded and vectorised with numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

N_BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
_CHUNK_ELEMENTS = 4_000_000  # bound the (resamples x pairs) index matrix to ~32 MB


def mean_std(values: list[float] | np.ndarray) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof=1; NaN for one value) and count of the finite
    values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    return mean, std, n


@dataclass(frozen=True)
class BootstrapCI:
    mean: float
    lo: float
    hi: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.n > 0 and (self.lo > 0 or self.hi < 0)


def bootstrap_mean_ci(
    diffs: np.ndarray | list[float],
    n_resamples: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> BootstrapCI:
    """Mean of ``diffs`` and its percentile-bootstrap interval. A constant sample returns exactly
    that constant for the mean and both bounds (no floating-point drift from resampling)."""
    d = np.asarray(diffs, dtype=float)
    n = int(d.size)
    if n == 0:
        return BootstrapCI(math.nan, math.nan, math.nan, 0)
    if np.all(d == d[0]):
        c = float(d[0])
        return BootstrapCI(c, c, c, n)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples, dtype=float)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = d[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return BootstrapCI(float(d.mean()), float(lo), float(hi), n)


def _paired_correct(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Columns ``a`` and ``b``: each side's correctness for every (id, seed) present in both.
    Duplicate keys on one side (should not happen) are averaged first."""
    key = ["id", "seed"]
    ga = a.groupby(key, sort=True)["correct"].mean()
    gb = b.groupby(key, sort=True)["correct"].mean()
    return pd.concat([ga.rename("a"), gb.rename("b")], axis=1, join="inner")


def paired_differences(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """``a.correct - b.correct`` for every (id, seed) present in both frames."""
    if a.empty or b.empty:
        return np.empty(0)
    joined = _paired_correct(a, b)
    return (joined["a"] - joined["b"]).to_numpy(dtype=float)


def seed_differences(a: pd.DataFrame, b: pd.DataFrame) -> dict[int, float]:
    """Per seed, the mean of ``a.correct - b.correct`` over the example ids both sides scored
    with that seed: the difference between the two adapters trained with that seed."""
    if a.empty or b.empty:
        return {}
    joined = _paired_correct(a, b)
    per_seed = (joined["a"] - joined["b"]).groupby(level="seed").mean()
    return {int(seed): float(d) for seed, d in per_seed.items()}


def paired_bootstrap(
    a: pd.DataFrame,
    b: pd.DataFrame,
    n_resamples: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
) -> BootstrapCI:
    """Paired difference a - b (by example id and seed) with its bootstrap interval."""
    return bootstrap_mean_ci(paired_differences(a, b), n_resamples=n_resamples, seed=seed)
