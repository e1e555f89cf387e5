"""The ``aa-check`` preset's section: one method compared with itself across seeds.

Every pair of seeds (s, s') of the same method is compared like two methods would be: the paired
difference by test example with its 95% bootstrap interval. If the intervals were calibrated for
comparing methods, about 5% of them would exclude zero. Far more means that two trainings of the
SAME method already differ by more than the example-level interval allows for, so a single-seed
comparison of two methods overstates its significance.
"""

from __future__ import annotations

import itertools

import pandas as pd

from reports.stats import BootstrapCI, bootstrap_mean_ci, paired_differences
from reports.tables import Table

EXPECTED_RATE = 0.05


def seed_pair_intervals(examples: pd.DataFrame) -> list[tuple[int, int, BootstrapCI]]:
    """(seed a, seed b, interval of a - b) for every pair of seeds in ``examples`` (one method
    and one task, primary metric), paired by example id."""
    seeds = sorted({int(s) for s in examples["seed"]})
    by_seed = {s: examples[examples["seed"] == s].assign(seed=0) for s in seeds}
    return [
        (a, b, bootstrap_mean_ci(paired_differences(by_seed[a], by_seed[b])))
        for a, b in itertools.combinations(seeds, 2)
    ]


def rejection_rate(intervals: list[tuple[int, int, BootstrapCI]]) -> float:
    usable = [ci for _, _, ci in intervals if ci.n > 0]
    return sum(ci.excludes_zero for ci in usable) / len(usable) if usable else float("nan")


def aa_table(examples: pd.DataFrame, tasks: list[str]) -> Table:
    """Per method and task: seed pairs, and the share whose interval excludes zero."""
    t = Table(
        key="aa_check",
        title="A/A check: each method against itself across seeds (95% paired intervals)",
        columns=["method", "task", "seed pairs", "interval excludes 0", "mean |difference|"],
    )
    primary = examples[examples["metric_index"] == 0]
    all_intervals = []
    for method in sorted(set(primary["method"])):
        for task in tasks:
            rows = primary[(primary["method"] == method) & (primary["task"] == task)]
            intervals = seed_pair_intervals(rows)
            if not intervals:
                continue
            all_intervals += intervals
            rate = rejection_rate(intervals)
            mean_abs = sum(abs(ci.mean) for _, _, ci in intervals) / len(intervals)
            t.add_row([method, task, str(len(intervals)), f"{rate:.0%}", f"{100 * mean_abs:.1f}"])
    if all_intervals:
        t.add_row(
            ["all", "all", str(len(all_intervals)), f"{rejection_rate(all_intervals):.0%}", ""]
        )
    t.notes.append(
        f"Calibrated intervals exclude zero for about {EXPECTED_RATE:.0%} of the pairs of a method "
        "with itself. A much higher share means that training seeds alone move the score by "
        "more than the example-level interval admits: compare methods over several seeds."
    )
    if not all_intervals:
        t.notes.append("Fewer than two seeds of one method per task: nothing to compare.")
    return t
