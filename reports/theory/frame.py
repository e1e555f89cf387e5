"""The sandbox's records as one table: a row per finished cell, its settings and its metrics.

Settings come from the record's resolved config (``task_config``: the data model,
``method_config``: the rank-one fit), not from ``axes``, so a setting that the grid held fixed
is still a column. Seed bands are summaries over the ``seed`` column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from results.schema import Record

TASK = "attention_lora"
SETTINGS = ("d", "alpha_pre", "alpha_ft", "noise", "shift", "seq_len", "width", "pool")
METHOD_SETTINGS = ("ridge", "selection", "init", "steps")
METRICS = (
    "test_error",
    "alignment",
    "norm_ratio",
    "pre_error",
    "pre_matrix_error",
    "base_error",
    "oracle_error",
)
EXACT = np.inf  # alpha_pre of the exact teacher as base (``none`` in the grid)


def theory_frame(records: list[Record]) -> pd.DataFrame:
    """One row per finished sandbox cell; ``alpha_pre`` is ``inf`` for the exact base and
    ``misalignment`` is ``1 - alignment``."""
    rows = []
    for r in records:
        if r.status != "done" or r.config.get("task") != TASK:
            continue
        task = r.config.get("task_config") or {}
        method = r.config.get("method_config") or {}
        row = {"cell_id": r.cell_id, "seed": r.seed}
        row |= {k: task.get(k) for k in SETTINGS}
        row |= {k: method.get(k) for k in METHOD_SETTINGS}
        row |= {s.metric: float(s.value) for s in r.scores if s.task == TASK}
        rows.append(row)
    df = pd.DataFrame(rows, columns=["cell_id", "seed", *SETTINGS, *METHOD_SETTINGS, *METRICS])
    df["alpha_pre"] = df["alpha_pre"].astype("float64").fillna(EXACT)
    df["misalignment"] = 1.0 - df["alignment"]
    df["excess_error"] = df["test_error"] - df["oracle_error"]
    return df


def seed_bands(df: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """Per group of ``keys``: mean, sd, min, max and number of seeds of ``metric``."""
    grouped = df.groupby(keys, dropna=False)[metric]
    out = grouped.agg(["mean", "std", "min", "max", "count"]).reset_index()
    return out.rename(columns={"count": "seeds"})


def alpha_pre_label(value: float) -> str:
    return "exact base" if np.isinf(value) else f"alpha_pre={value:g}"
