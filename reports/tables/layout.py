"""Grid axes and table layout, decided from the records frame: which axes split tables, which
become sub-rows, the method and value order, and how rows and groups are selected."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from results.store import BASE_COLUMNS, COST_COLUMNS

METHOD_ORDER = ("base", "lora", "dora", "static_core", "nara", "binned_lora")
BASE_METHOD = "base"  # the unadapted model: the first row of every table


def _sort_key(v: Any) -> tuple:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return (0, "")
    if isinstance(v, (bool, np.bool_)):
        return (1, str(v))
    if isinstance(v, (int, float, np.integer, np.floating)):
        return (2, float(v))
    return (3, str(v))


def _isnull(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _norm(v: Any) -> Any:
    """Axis values as plain python (Int64 -> int, NaN/NA -> None) so that they compare and
    hash consistently."""
    if _isnull(v):
        return None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def method_order(methods: Iterable[str], baseline: str | None = None) -> list[str]:
    """The base model first (the reference every gain is read against: it shows how much room a
    task leaves), then the baseline the others are compared with, then the known methods in
    their usual order, then any other by name."""
    ms = list(dict.fromkeys(methods))

    def key(m: str) -> tuple:
        first = 0 if m == BASE_METHOD else 1 if m == baseline else 2
        known = METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER)
        return (first, known, m)

    return sorted(ms, key=key)


def axis_columns(frame: pd.DataFrame) -> list[str]:
    """rank, steps and the config-axis columns of a records frame."""
    extra = [c for c in frame.columns if c not in BASE_COLUMNS and c not in COST_COLUMNS]
    extra = [c for c in extra if c not in ("trainable_pct", "adapter_dir")]
    return ["rank", "steps", *extra]


@dataclass
class Layout:
    split_axes: list[str]
    row_axes: list[str]
    seeds: list[int]
    tasks: list[str]  # score tasks, ordered by suite
    suites: dict[str, str | None]  # score task -> suite
    task_cells: dict[str, set[str]]  # score task -> the cell tasks that produce it
    scale: float  # 100 when the primary metrics are fractions, else 1
    baseline: str
    methods: list[str]
    # axis -> values in the order the grid file lists them (sorting falls back to value order)
    value_order: dict[str, list[Any]] = field(default_factory=dict)

    def value_key(self, axis: str, value: Any) -> tuple:
        order = self.value_order.get(axis, [])
        for i, v in enumerate(order):
            if _norm(v) == value:
                return (0, i)
        return (1, _sort_key(value))

    def row_order(self, key: tuple[str, tuple[tuple[str, Any], ...]]) -> tuple:
        """Sort key of a (method, sub-row axis values) row: method order, then value order."""
        method, sub = key
        return (self.methods.index(method), tuple(self.value_key(a, v) for a, v in sub))


def layout(
    frame: pd.DataFrame,
    baseline: str,
    focus_axis: str | None = None,
    value_order: dict[str, list[Any]] | None = None,
) -> Layout:
    scored = frame[frame["metric"].notna()]
    split, rows = [], []
    for a in axis_columns(frame):
        if a not in frame.columns:
            continue
        src = scored if a in ("steps", "sampler") else frame  # per score, not per cell
        vals = {_norm(v) for v in src[a]}
        non_null = {v for v in vals if v is not None}
        if len(non_null) <= 1 and a != focus_axis:
            continue
        if not non_null:
            continue
        if a == focus_axis or None in vals:
            rows.append(a)
        else:
            split.append(a)
    seeds = sorted({int(s) for s in frame["seed"]})
    suites: dict[str, str | None] = {}
    task_cells: dict[str, set[str]] = {}
    for _, r in frame.iterrows():
        suites.setdefault(r["task"], r["suite"] if not _isnull(r["suite"]) else None)
        task_cells.setdefault(r["task"], set()).add(r["cell_task"])
    # A failed cell's row carries its cell task; drop it as a column when another score task
    # stands for it (e.g. a suite cell producing several test sets).
    produced = {t for t in scored["task"]}
    for t in list(task_cells):
        if t not in produced and any(t in cs for u, cs in task_cells.items() if u != t):
            del task_cells[t]
            suites.pop(t, None)
    tasks = sorted(suites, key=lambda t: (str(suites[t] or ""), t))
    prim = scored[scored["metric_index"] == 0]["value"].dropna()
    scale = 100.0 if len(prim) and prim.between(0.0, 1.0).all() else 1.0
    return Layout(
        split_axes=split,
        row_axes=rows,
        seeds=seeds,
        tasks=tasks,
        suites=suites,
        task_cells=task_cells,
        scale=scale,
        baseline=baseline,
        methods=method_order(frame["method"], baseline),
        value_order=dict(value_order or {}),
    )


def fmt_axis(name: str, value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and name in ("rank", "steps"):
        value = int(value)
    return f"{name}={value}"


def row_label(method: str, sub: tuple[tuple[str, Any], ...]) -> str:
    shown = [fmt_axis(a, v) for a, v in sub if v is not None]
    return method + (f" ({', '.join(shown)})" if shown else "")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_") or "all"


def groups(
    frame: pd.DataFrame, lay: Layout
) -> list[tuple[tuple[tuple[str, Any], ...], pd.DataFrame]]:
    """Split ``frame`` by the split axes. A cell without scores (failed, running) and no value
    for an axis (only ``steps`` can be missing that way) is placed in every group of that axis."""
    if not lay.split_axes:
        return [((), frame)]
    combos = (
        frame[frame["metric"].notna()][lay.split_axes]
        .map(_norm)
        .drop_duplicates()
        .itertuples(index=False, name=None)
    )

    def combo_key(c: tuple) -> tuple:
        return tuple(lay.value_key(a, v) for a, v in zip(lay.split_axes, c, strict=True))

    combos = sorted(set(combos), key=combo_key)
    if not combos:
        combos = sorted(
            set(frame[lay.split_axes].map(_norm).itertuples(index=False, name=None)),
            key=combo_key,
        )
    out = []
    for combo in combos:
        mask = pd.Series(True, index=frame.index)
        for a, v in zip(lay.split_axes, combo, strict=True):
            col = frame[a].map(_norm)
            mask &= (col == v) | (col.isna() & frame["metric"].isna())
        out.append((tuple(zip(lay.split_axes, combo, strict=True)), frame[mask]))
    return out


def row_keys(frame: pd.DataFrame, lay: Layout) -> list[tuple[str, tuple[tuple[str, Any], ...]]]:
    keys = set()
    for _, r in frame.iterrows():
        sub = tuple((a, _norm(r[a])) for a in lay.row_axes)
        keys.add((r["method"], sub))
    return sorted(keys, key=lay.row_order)


def select_row(frame: pd.DataFrame, key: tuple[str, tuple[tuple[str, Any], ...]]) -> pd.DataFrame:
    method, sub = key
    mask = frame["method"] == method
    for a, v in sub:
        mask &= matches(frame, a, v)
    return frame[mask]


def matches(frame: pd.DataFrame, axis: str, value: Any) -> pd.Series:
    """Rows whose ``axis`` value is ``value`` (no value at all when ``value`` is None)."""
    col = frame[axis].map(_norm)
    return col.isna() if value is None else (col == value)
