"""The costs table: parameters, adapter size, time, throughput and memory per method row, each
with its ratio to the baseline method."""

from __future__ import annotations

import math

import pandas as pd

from reports.tables.layout import Layout, _norm, row_label, select_row
from reports.tables.table import NOT_RUN, Table
from reports.tables.units import human_bytes, human_count, human_seconds

COSTS = (
    ("trainable params", "trainable_params", human_count),
    ("adapter size", "adapter_bytes", human_bytes),
    ("train time", "train_time_s", human_seconds),
    ("tokens/s", "tokens_per_s", lambda x: f"{x:,.0f}"),
    ("peak memory", "peak_memory_bytes", human_bytes),
    ("time / sampling step", "time_per_sampling_step_s", human_seconds),
    ("eval time", "eval_time_s", human_seconds),
)


def costs_table(frame: pd.DataFrame, lay: Layout) -> Table:
    """One row per method (x every varying axis but steps); each cost is the mean over the
    row's finished cells, with its ratio to the baseline method at the same split-axis values."""
    per_cell = frame[frame["status"] == "done"].drop_duplicates("cell_id")
    split = [a for a in lay.split_axes if a != "steps"]
    axes = split + [a for a in lay.row_axes if a != "steps"]
    cols = ["method"] + split + [c[0] for c in COSTS]
    t = Table(key="costs", title="Costs (mean per cell; × = ratio to the baseline)", columns=cols)
    keys = set()
    for _, r in per_cell.iterrows():
        keys.add((r["method"], tuple((a, _norm(r[a])) for a in axes)))
    keys = sorted(keys, key=lay.row_order)

    def means(rows: pd.DataFrame) -> dict[str, float]:
        return {c: float(rows[c].dropna().astype(float).mean()) for _, c, _ in COSTS}

    for method, vals in keys:
        rows = select_row(per_cell, (method, vals))
        m = means(rows)
        sv = dict(vals[: len(split)])
        base_rows = per_cell[per_cell["method"] == lay.baseline]
        for a, v in sv.items():
            base_rows = base_rows[base_rows[a].map(_norm) == v]
        b = means(base_rows) if not base_rows.empty else {}
        sub = tuple((a, v) for a, v in vals[len(split) :])
        cells = [row_label(method, sub)] + [str(v) for v in sv.values()]
        for _, c, fmt in COSTS:
            x = m[c]
            if math.isnan(x):
                cells.append(NOT_RUN)
                continue
            text = fmt(x)
            bx = b.get(c, math.nan)
            if not math.isnan(bx) and bx != 0:
                text += f" (×{x / bx:.2f})"
            cells.append(text)
        t.add_row(cells)
    if per_cell.empty:
        t.notes.append("No finished cells: no costs to show.")
    if lay.baseline not in set(per_cell["method"]):
        t.notes.append(f"Baseline method '{lay.baseline}' has no finished cells: no ratios.")
    return t
