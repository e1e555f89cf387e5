"""Which per-example results may be paired, and the base model's results for every seed.

- A ``base`` cell (a method that trains nothing) is evaluated once, with seed 0; its per-example
  results stand for every seed of the methods it is compared with, so they are repeated for each
  seed before pairing by (example id, seed).
- Two sides are paired only when they scored the same examples: every score records the content
  hash of its scored set, and differing hashes refuse the pairing (one note in the report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from reports.power import mde_text, minimum_detectable_effect, observed_discordance
from reports.stats import BootstrapCI, bootstrap_mean_ci, paired_differences, seed_differences

CI_MARK = "*"
NOT_PAIRED = "not paired: scored sets differ"
NOT_PAIRED_NOTE = (
    "Not paired: the two sides scored different test sets (their scored-set content hashes "
    "differ, e.g. data from another version or another --limit), so no paired difference is "
    "shown. Rerun them on the same data."
)


def untrained_methods() -> set[str]:
    from methods.registry import METHODS

    return {name for name, m in METHODS.items() if not m.trains}


def repeat_untrained_over_seeds(examples: pd.DataFrame, seeds: list[int]) -> pd.DataFrame:
    """Rows of untrained methods copied once per seed in ``seeds`` (their own seed dropped)."""
    if examples.empty or not seeds:
        return examples
    untrained = examples["method"].isin(untrained_methods())
    if not untrained.any():
        return examples
    fixed = examples[untrained]
    copies = [fixed.assign(seed=int(s)) for s in seeds]
    return pd.concat([examples[~untrained], *copies], ignore_index=True)


def scored_sets_differ(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """True when the two sides (rows of the examples frame) carry more than one scored-set hash
    between them. Rows without a hash (older records) do not count."""
    if "scored_set_hash" not in a.columns or "scored_set_hash" not in b.columns:
        return False
    hashes = set(a["scored_set_hash"].dropna()) | set(b["scored_set_hash"].dropna())
    return len(hashes) > 1


@dataclass(frozen=True)
class PairedResult:
    """One paired comparison: the bootstrap interval, the discordance and the MDE; or a refusal.
    ``per_seed``: the mean difference of each seed's pair of adapters, by seed."""

    ci: BootstrapCI
    discordance: float = math.nan
    mde: float = math.nan
    refused: bool = False
    per_seed: dict[int, float] = field(default_factory=dict)

    @property
    def seeds_disagree(self) -> bool:
        """One seed's adapters differ one way and another seed's the other way."""
        values = self.per_seed.values()
        return any(d > 0 for d in values) and any(d < 0 for d in values)


def paired_comparison(a: pd.DataFrame, b: pd.DataFrame) -> PairedResult:
    """a - b paired by (example id, seed), refused when the scored sets differ."""
    if scored_sets_differ(a, b):
        return PairedResult(BootstrapCI(math.nan, math.nan, math.nan, 0), refused=True)
    diffs = paired_differences(a, b)
    ci = bootstrap_mean_ci(diffs)
    p = observed_discordance(diffs)
    mde = minimum_detectable_effect(len(diffs), p)
    return PairedResult(ci, p, mde, per_seed=seed_differences(a, b))


def ci_text(ci: BootstrapCI, scale: float) -> str:
    if ci.n == 0:
        return "n/a (no paired examples)"
    d = 1 if scale == 100.0 else 3
    mark = CI_MARK if ci.excludes_zero else ""
    return (
        f"{ci.mean * scale:+.{d}f}{mark} [{ci.lo * scale:+.{d}f}, {ci.hi * scale:+.{d}f}] "
        f"(n={ci.n})"
    )


SEEDS_DISAGREE = "seeds disagree"


def seed_text(result: PairedResult, scale: float) -> str:
    """Each seed's difference in seed order, e.g. ``+12.0 / -3.5 (seeds disagree)``."""
    if result.refused:
        return NOT_PAIRED
    if not result.per_seed:
        return "n/a (no paired examples)"
    d = 1 if scale == 100.0 else 3
    text = " / ".join(f"{result.per_seed[s] * scale:+.{d}f}" for s in sorted(result.per_seed))
    return text + (f" ({SEEDS_DISAGREE})" if result.seeds_disagree else "")


def paired_text(result: PairedResult, scale: float) -> str:
    """The interval with the MDE beside it, e.g. ``+3.0* [+0.5, +5.5] (n=600; MDE 4.1)``."""
    if result.refused:
        return NOT_PAIRED
    text = ci_text(result.ci, scale)
    if result.ci.n == 0:
        return text
    return text[:-1] + f"; {mde_text(result.mde, scale)})"
