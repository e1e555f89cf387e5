"""Paired statistics tables: each method row against the baseline (or each value of a focus axis
against a reference value), paired by example id and seed, with bootstrap intervals."""

from __future__ import annotations

from typing import Any

import pandas as pd

from reports.pairing import (
    CI_MARK,
    NOT_PAIRED_NOTE,
    SEEDS_DISAGREE,
    paired_comparison,
    paired_text,
    repeat_untrained_over_seeds,
    seed_text,
    untrained_methods,
)
from reports.tables.layout import (
    Layout,
    _slug,
    fmt_axis,
    groups,
    matches,
    row_keys,
    row_label,
)
from reports.tables.table import Table


def _select_examples(ex: pd.DataFrame, key, combo, task: str) -> pd.DataFrame:
    method, sub = key
    mask = (ex["method"] == method) & (ex["task"] == task) & (ex["metric_index"] == 0)
    for a, v in (*combo, *sub):
        if a not in ex.columns:
            continue
        mask &= matches(ex, a, v)
    return ex[mask]


def paired_tables(
    frame: pd.DataFrame, examples: pd.DataFrame, lay: Layout
) -> tuple[list[Table], list[Table], pd.DataFrame]:
    """Per split group: every non-baseline row against the baseline, per task: paired mean
    difference (by example id and seed) with a 95% bootstrap interval; with two seeds or more,
    also each seed's paired difference on its own (the interval holds the trained adapters
    fixed; the seeds show what retraining moves). Returns the interval tables, the seed-by-seed
    tables and a long frame of the numbers."""
    tables, seed_tables, long_rows = [], [], []
    unit = "points" if lay.scale == 100.0 else "metric units"
    examples = repeat_untrained_over_seeds(examples, lay.seeds)
    for combo, g in groups(frame, lay):
        keys = row_keys(g, lay)
        base_keys = [k for k in keys if k[0] == lay.baseline]
        suffix = ", ".join(fmt_axis(a, v) for a, v in combo)
        slug = "_" + _slug(suffix.replace(", ", "_")) if combo else ""
        title = f"Paired difference to {lay.baseline} ({unit}, 95% bootstrap CI)"
        t = Table(
            key="stats" + slug,
            title=title + (f" — {suffix}" if suffix else ""),
            columns=["method", *lay.tasks],
        )
        if not base_keys:
            t.notes.append(f"Baseline method '{lay.baseline}' is not in this group: no statistics.")
            tables.append(t)
            continue
        base = base_keys[0]
        by_seed = Table(
            key="seeds" + slug,
            title=f"Paired difference to {lay.baseline}, seed by seed ({unit})"
            + (f" — {suffix}" if suffix else ""),
            columns=["method", *lay.tasks],
            notes=[SEED_NOTE],
        )
        refused = False
        for key in keys:
            if key == base:
                continue
            cells, seed_cells = [row_label(*key)], [row_label(*key)]
            for task in lay.tasks:
                a = _select_examples(examples, key, combo, task)
                b = _select_examples(examples, base, combo, task)
                result = paired_comparison(a, b)
                ci = result.ci
                refused = refused or result.refused
                cells.append(paired_text(result, lay.scale))
                seed_cells.append(seed_text(result, lay.scale))
                long_rows.append(
                    {
                        "group": suffix,
                        "method": row_label(*key),
                        "baseline": row_label(*base),
                        "task": task,
                        "mean_diff": ci.mean,
                        "ci_lo": ci.lo,
                        "ci_hi": ci.hi,
                        "n_pairs": ci.n,
                        "excludes_zero": ci.excludes_zero,
                        "discordance": result.discordance,
                        "mde": result.mde,
                        "paired": not result.refused,
                        "seed_diffs": ";".join(
                            f"{seed}:{d:+.4f}" for seed, d in sorted(result.per_seed.items())
                        ),
                        "seeds_disagree": result.seeds_disagree,
                    }
                )
            t.add_row(cells)
            by_seed.add_row(seed_cells)
        t.notes.append(
            f"{CI_MARK} the 95% interval excludes zero. Pairs are (example id, seed) evaluated by "
            "both; n = number of pairs; 2000 seeded bootstrap resamples over pairs. MDE: the "
            "smallest true difference this comparison detects with 80% power at alpha 0.05, "
            "from n and the observed fraction of pairs that disagree (reports/power.py); an "
            "interval that includes zero says little about differences below it."
        )
        if set(g["method"]) & untrained_methods():
            t.notes.append(
                "The base model is evaluated once; its per-example results are paired with "
                "every seed of the other side."
            )
        if refused:
            t.notes.append(NOT_PAIRED_NOTE)
        tables.append(t)
        if len(lay.seeds) > 1:
            seed_tables.append(by_seed)
    return tables, seed_tables, pd.DataFrame(long_rows)


def stats_tables(
    frame: pd.DataFrame, examples: pd.DataFrame, lay: Layout
) -> tuple[list[Table], pd.DataFrame]:
    """The interval tables and the long frame of :func:`paired_tables`."""
    tables, _, long = paired_tables(frame, examples, lay)
    return tables, long


def seed_tables(frame: pd.DataFrame, examples: pd.DataFrame, lay: Layout) -> list[Table]:
    """The seed-by-seed tables of :func:`paired_tables` (none with a single seed)."""
    return paired_tables(frame, examples, lay)[1]


SEED_NOTE = (
    "Each seed's mean paired difference: the two adapters trained with that seed, on the same "
    "examples. The interval above holds the trained adapters fixed: it measures which test "
    "examples were drawn, not retraining. Retraining (another seed, or the same seed on a CPU "
    "whose kernels round differently) can move a score by more than that; where the seeds "
    f"disagree in sign ('{SEEDS_DISAGREE}'), this run does not establish which method is "
    "ahead, whatever the interval says."
)


def focus_stats_table(
    frame: pd.DataFrame, examples: pd.DataFrame, lay: Layout, axis: str, reference: Any
) -> Table:
    """Within each method, every value of ``axis`` against ``reference`` (paired by example id
    and seed, same other axes)."""
    unit = "points" if lay.scale == 100.0 else "metric units"
    t = Table(
        key="focus_stats",
        title=f"Paired difference to {fmt_axis(axis, reference)} ({unit}, 95% bootstrap CI)",
        columns=["method", *lay.tasks],
    )
    examples = repeat_untrained_over_seeds(examples, lay.seeds)
    for combo, g in groups(frame, lay):
        for key in row_keys(g, lay):
            sub = dict(key[1])
            if sub.get(axis) is None or sub.get(axis) == reference:
                continue
            ref_key = (
                key[0],
                tuple((a, reference if a == axis else sub.get(a)) for a in lay.row_axes),
            )
            label = row_label(*key) + (
                " — " + ", ".join(fmt_axis(a, v) for a, v in combo) if combo else ""
            )
            cells = [label]
            for task in lay.tasks:
                a = _select_examples(examples, key, combo, task)
                b = _select_examples(examples, ref_key, combo, task)
                cells.append(paired_text(paired_comparison(a, b), lay.scale))
            t.add_row(cells)
    if not t.rows:
        t.notes.append(f"No cells with {axis} other than {reference!r} to compare.")
    t.notes.append(f"{CI_MARK} the 95% interval excludes zero.")
    return t
