"""Can the core be seen? Per row and task: how much the core changes the update, and how often
the method answers exactly like the same-seed baseline (LoRA) cell.

- core effect: ||B (C(t) - I) A|| / ||B A|| over all adapted layers, at a few noise levels for
  NaRA, at the learned P for static-core LoRA (``methods.nara.relative_core_effect``), read
  from each cell's saved adapter and averaged over seeds. 0 means the method IS LoRA.
- identical: the fraction of (test example, seed) pairs whose raw prediction equals the
  baseline's.

A row that answers like the baseline on nearly every pair gets a note saying why, because the
three reasons call for different conclusions: both rows are at the ceiling (every answer right,
so no core could make them differ: the task is too easy to tell), the core hardly moves (the
method IS nearly LoRA at this budget: train the core faster), or the core moves and the answers
still do not change (a real finding about the core).
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
CEILING = 0.99  # both rows right on at least this share of the pairs: identical by necessity
CORE_STILL = 0.10  # a core effect below this at every level: the core hardly moves


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


def both_right_fraction(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Fraction of the (id, seed, steps) pairs present on both sides that both sides got right
    (``correct`` of 1): the share of identical predictions a ceiling forces."""
    key = ["id", "seed", "steps"]
    if a.empty or b.empty:
        return math.nan
    left = a[key + ["correct"]].drop_duplicates(key)
    right = b[key + ["correct"]].drop_duplicates(key)
    joined = left.merge(right, on=key, suffixes=("_a", "_b"))
    if joined.empty:
        return math.nan
    return float(((joined["correct_a"] >= 1.0) & (joined["correct_b"] >= 1.0)).mean())


def why_identical(effect: np.ndarray, both_right: float) -> str:
    """Why a row answers like the baseline: ``ceiling``, ``still`` or ``moving``."""
    if not math.isnan(both_right) and both_right >= CEILING:
        return "ceiling"
    return "still" if float(np.max(np.abs(effect))) < CORE_STILL else "moving"


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
    same_as_base: dict[str, list[str]] = {"ceiling": [], "still": [], "moving": []}
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
            same, n, both_right = (math.nan, 0, math.nan)
            if base_keys:
                theirs = _task_examples(examples, base_keys[0], task)
                same, n = identical_fraction(mine, theirs)
                both_right = both_right_fraction(mine, theirs)
            effect_text = ["—"] * len(CORE_LEVELS) if effect is None else [_pct(x) for x in effect]
            t.add_row(
                [row_label(*key), task, *effect_text, _pct(same) + (f" (n={n})" if n else "")]
            )
            if effect is not None and n and same >= SAME_AS_BASELINE:
                reason = why_identical(effect, both_right)
                detail = (
                    f"both right on {_pct(both_right)}"
                    if reason == "ceiling"
                    else f"core effect up to {_pct(float(np.max(np.abs(effect))))}"
                )
                same_as_base[reason].append(f"{row_label(*key)} on {task} ({detail})")
    if not t.rows:
        return None
    t.notes.append(
        "Core effect: ||B (C(t) - I) A|| / ||B A|| over all adapted layers (mean over seeds): 0 "
        "means the core changes nothing and the method is plain LoRA; static cores do not "
        "depend on t. Identical: share of (example, seed) pairs with the very same prediction."
    )
    t.notes += _identical_notes(same_as_base, lay.baseline)
    return t


def _identical_notes(rows: dict[str, list[str]], baseline: str) -> list[str]:
    same = f"Same predictions as {baseline} on at least {SAME_AS_BASELINE:.0%} of the pairs"
    notes = []
    if rows["ceiling"]:
        notes.append(
            f"{same} because both are at the ceiling: "
            + "; ".join(rows["ceiling"])
            + ". With (nearly) every answer right, no core could make the predictions differ; "
            "this says nothing about the core. A harder task tells them apart."
        )
    if rows["still"]:
        notes.append(
            f"{same}: "
            + "; ".join(rows["still"])
            + f". Their core hardly moves (an effect below {CORE_STILL:.0%} at every level), so "
            f"they cannot differ from {baseline}; a run with a faster core (e.g. --set "
            "nara.core_lr_scale=5) shows whether a moving core helps."
        )
    if rows["moving"]:
        notes.append(
            f"{same}: "
            + "; ".join(rows["moving"])
            + ". Their core moves, yet the answers stay the same: the core changes the update "
            "but not what the model answers on these examples."
        )
    return notes


def _task_examples(examples: pd.DataFrame, key, task: str) -> pd.DataFrame:
    method, sub = key
    mask = (examples["method"] == method) & (examples["task"] == task)
    mask &= examples["metric_index"] == 0
    for axis, value in sub:
        if axis in examples.columns:
            col = examples[axis]
            mask &= col.isna() if value is None else (col == value)
    return examples[mask]
