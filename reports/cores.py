"""Can the core be seen? Per row and task: how much the core changes the update, and how often
the method answers exactly like the same-seed baseline (LoRA) cell.

- core effect: ||B (C(t) - I) A|| / ||B A|| over all adapted layers, at a few noise levels for
  NaRA, at the learned P for static-core LoRA (``methods.nara.relative_core_effect``), read
  from each cell's saved adapter and averaged over seeds. 0 means the method IS LoRA.
- identical: the fraction of (test example, seed) pairs whose raw prediction equals the
  baseline's.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reports.pairing import repeat_untrained_over_seeds
from reports.tables import Table, row_keys, row_label, select_row
from results.schema import Record

CORE_LEVELS = (0.1, 0.5, 0.9)
SAME_AS_BASELINE = 0.99  # a row at least this identical to the baseline is called out


def _core_effects(records: dict[str, Record], cell_ids: set[str]) -> np.ndarray | None:
    try:
        from methods.nara import relative_core_effect
    except ImportError:  # the analysis is unavailable: the table shows "—"
        return None
    values = []
    for cell_id in sorted(cell_ids):
        record = records.get(cell_id)
        path = record.adapter_path() if record is not None else None
        if path is None or not path.is_dir():
            continue
        try:
            effect = relative_core_effect(path, np.asarray(CORE_LEVELS))
        except Exception:  # noqa: BLE001 - an unreadable adapter shows as "—", not a crash
            continue
        if effect is not None:
            values.append(effect)
    return np.mean(values, axis=0) if values else None


def identical_fraction(a: pd.DataFrame, b: pd.DataFrame) -> tuple[float, int]:
    """Fraction of (id, seed, steps) present on both sides whose predictions are equal."""
    key = ["id", "seed", "steps"]
    if a.empty or b.empty:
        return math.nan, 0
    left = a[key + ["prediction"]].drop_duplicates(key)
    right = b[key + ["prediction"]].drop_duplicates(key)
    joined = left.merge(right, on=key, suffixes=("_a", "_b"))
    if joined.empty:
        return math.nan, 0
    same = (joined["prediction_a"].astype(str) == joined["prediction_b"].astype(str)).mean()
    return float(same), len(joined)


def _pct(x: float) -> str:
    return "—" if x is None or math.isnan(x) else f"{100 * x:.1f}%"


def core_table(
    records: list[Record], frame: pd.DataFrame, examples: pd.DataFrame, lay
) -> Table | None:
    """One row per (method row, task) other than the baseline; None without such rows."""
    by_id = {r.cell_id: r for r in records}
    examples = repeat_untrained_over_seeds(examples, lay.seeds)
    effect_cols = [f"core effect t={t:g}" for t in CORE_LEVELS]
    t = Table(
        key="cores",
        title=f"Core visibility (and predictions identical to the same-seed {lay.baseline})",
        columns=["method", "task", *effect_cols, f"identical to {lay.baseline}"],
    )
    done = frame[frame["status"] == "done"]
    keys = row_keys(done, lay)
    base_keys = [k for k in keys if k[0] == lay.baseline]
    same_as_base = []
    for key in keys:
        if key in base_keys:
            continue
        rows = select_row(done, key)
        for task in lay.tasks:
            cells = set(rows[rows["task"] == task]["cell_id"])
            if not cells:
                continue
            effect = _core_effects(by_id, cells)
            mine = _task_examples(examples, key, task)
            same, n = (math.nan, 0)
            if base_keys:
                same, n = identical_fraction(mine, _task_examples(examples, base_keys[0], task))
            effect_text = ["—"] * len(CORE_LEVELS) if effect is None else [_pct(x) for x in effect]
            t.add_row(
                [row_label(*key), task, *effect_text, _pct(same) + (f" (n={n})" if n else "")]
            )
            if effect is not None and n and same >= SAME_AS_BASELINE:
                same_as_base.append(f"{row_label(*key)} on {task}")
    if not t.rows:
        return None
    t.notes.append(
        "Core effect: ||B (C(t) - I) A|| / ||B A|| over all adapted layers (mean over seeds): 0 "
        "means the core changes nothing and the method is plain LoRA; static cores do not "
        "depend on t. Identical: share of (example, seed) pairs with the very same prediction."
    )
    if same_as_base:
        t.notes.append(
            f"Same predictions as {lay.baseline} on at least {SAME_AS_BASELINE:.0%} of the pairs: "
            + "; ".join(same_as_base)
            + ". At this budget their core hardly moves, so they cannot differ from "
            f"{lay.baseline}; a run with a faster core (e.g. --set nara.core_lr_scale=10) shows "
            "whether a moving core helps."
        )
    return t


def _task_examples(examples: pd.DataFrame, key, task: str) -> pd.DataFrame:
    method, sub = key
    mask = (examples["method"] == method) & (examples["task"] == task)
    mask &= examples["metric_index"] == 0
    for axis, value in sub:
        if axis in examples.columns:
            col = examples[axis]
            mask &= col.isna() if value is None else (col == value)
    return examples[mask]
