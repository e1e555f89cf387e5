"""Minimum detectable effect (MDE) of a paired comparison of two methods on one task.

Per (test example, seed) pair the difference of correctness is d in {-1, 0, +1}. With n pairs and
a discordance p (the fraction of pairs where the two sides disagree), the observed mean difference
has standard deviation sqrt((p - delta^2) / n) when the true difference is delta. A two-sided
test at level alpha rejects when |mean| > z_{1-alpha/2} * sd, so it detects delta with
probability ``power`` when

    delta = (z_{1-alpha/2} + z_power) * sqrt((p - delta^2) / n),
    i.e.  delta = c * sqrt(p / (n + c^2)),  c = z_{1-alpha/2} + z_power.

This is what the report's bootstrap interval (which uses the sample spread) tests to a close
approximation; ``tests/test_reports_power.py`` checks the formula against a simulation.
Pairs of one example across seeds are treated as independent (an optimistic approximation when
the seeds agree on which examples are hard).
"""

from __future__ import annotations

import math
from statistics import NormalDist

ALPHA = 0.05
POWER = 0.80
# Discordances the dry run shows an MDE for, before any result exists (two adapters of one
# task typically disagree on 10-30% of the examples).
PLANNING_DISCORDANCES = (0.1, 0.2, 0.3)


def z_sum(alpha: float = ALPHA, power: float = POWER) -> float:
    normal = NormalDist()
    return normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)


def minimum_detectable_effect(
    n_pairs: int, discordance: float, alpha: float = ALPHA, power: float = POWER
) -> float:
    """The smallest true paired difference (as a fraction) detected with ``power``; NaN for no
    pairs. A discordance of 0 (identical predictions) gives 0: any real difference would show."""
    if n_pairs <= 0 or not 0 <= discordance <= 1:
        return math.nan
    c = z_sum(alpha, power)
    return c * math.sqrt(discordance / (n_pairs + c * c))


def observed_discordance(diffs) -> float:
    """The fraction of pairs whose two sides differ (diffs are a - b per pair)."""
    n = len(diffs)
    return sum(1 for d in diffs if d != 0) / n if n else math.nan


def mde_text(mde: float, scale: float) -> str:
    if math.isnan(mde):
        return "MDE n/a"
    digits = 1 if scale == 100.0 else 3
    return f"MDE {mde * scale:.{digits}f}"


def planning_line(task: str, n_examples: int, n_seeds: int) -> str:
    """One dry-run line: the MDE in points for a few plausible discordances."""
    n = n_examples * n_seeds
    shown = " / ".join(
        f"{100 * minimum_detectable_effect(n, p):.1f}" for p in PLANNING_DISCORDANCES
    )
    where = " / ".join(f"{p:g}" for p in PLANNING_DISCORDANCES)
    return (
        f"{task}: {n_examples} examples x {n_seeds} seeds = {n} pairs; MDE (paired, 80% power, "
        f"alpha 0.05) {shown} points at discordance {where}"
    )
