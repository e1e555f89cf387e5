"""Paper-style tables from the records frame: main results, costs, paired statistics, failures.

Grid axes are handled in two ways (decided from the data, :func:`layout`):

- a *split* axis has a value in every cell (rank, sampling steps, ``train.lr``, ...): one table
  per combination of split-axis values;
- a *row* axis applies to some methods only (``nara.c_scale`` is absent from LoRA cells): its
  values become sub-rows, e.g. ``nara (nara.c_scale=0.1)``.

Each table is a :class:`Table` (text cells plus a bold mask) rendered to markdown, CSV or rich.
Cells whose primary metric is a fraction are shown in percent. Every expected seed that is
missing, failed or still running is visible in the entry ("n=2 of 3, 1 failed").
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reports.pairing import (
    CI_MARK,
    NOT_PAIRED_NOTE,
    paired_comparison,
    paired_text,
    repeat_untrained_over_seeds,
    untrained_methods,
)
from reports.stats import mean_std
from results.schema import Record
from results.store import BASE_COLUMNS, COST_COLUMNS

METHOD_ORDER = ("base", "lora", "dora", "static_core", "nara", "binned_lora")
NOT_RUN = "—"


# -- the table object and its renderers -------------------------------------------------------
@dataclass
class Table:
    key: str  # file-name stem
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    bold: list[list[bool]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_row(self, cells: list[str], bold: list[bool] | None = None) -> None:
        self.rows.append(cells)
        self.bold.append(bold or [False] * len(cells))

    def to_markdown(self) -> str:
        def esc(s: str) -> str:
            return s.replace("|", "\\|")

        out = ["| " + " | ".join(esc(c) for c in self.columns) + " |"]
        out.append("|" + "|".join([" --- "] + [" ---: "] * (len(self.columns) - 1)) + "|")
        for cells, bold in zip(self.rows, self.bold, strict=True):
            shown = [
                f"**{esc(c)}**" if b and c else esc(c) for c, b in zip(cells, bold, strict=True)
            ]
            out.append("| " + " | ".join(shown) + " |")
        return "\n".join(out)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        w.writerows(self.rows)
        return buf.getvalue()

    def to_rich(self):  # -> rich.table.Table
        from rich.table import Table as RichTable

        t = RichTable(title=self.title, show_lines=False)
        for i, c in enumerate(self.columns):
            t.add_column(c, justify="left" if i == 0 else "right")
        for cells, bold in zip(self.rows, self.bold, strict=True):
            t.add_row(*[f"[bold]{c}[/bold]" if b else c for c, b in zip(cells, bold, strict=True)])
        return t


# -- axes and layout --------------------------------------------------------------------------
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
    ms = list(dict.fromkeys(methods))

    def key(m: str) -> tuple:
        first = 0 if m == baseline else 1
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
    return sorted(
        keys,
        key=lambda k: (lay.methods.index(k[0]), tuple(lay.value_key(a, v) for a, v in k[1])),
    )


def select_row(frame: pd.DataFrame, key: tuple[str, tuple[tuple[str, Any], ...]]) -> pd.DataFrame:
    method, sub = key
    mask = frame["method"] == method
    for a, v in sub:
        col = frame[a].map(_norm)
        mask &= col.isna() if v is None else (col == v)
    return frame[mask]


# -- entries ----------------------------------------------------------------------------------
@dataclass
class Entry:
    per_seed: dict[int, float]
    n_expected: int
    n_failed: int = 0
    n_running: int = 0

    @property
    def stats(self) -> tuple[float, float, int]:
        return mean_std(list(self.per_seed.values()))

    def text(self, scale: float) -> str:
        mean, std, n = self.stats
        if n == 0:
            if self.n_failed:
                return f"failed ({self.n_failed} of {self.n_expected})"
            if self.n_running:
                return f"running ({self.n_running} of {self.n_expected})"
            return NOT_RUN
        digits = 1 if scale == 100.0 else 3
        body = f"{mean * scale:.{digits}f}"
        if n > 1:
            body += f" ± {std * scale:.{digits}f}"
        count = f"n={n}" if n == self.n_expected else f"n={n} of {self.n_expected}"
        if self.n_failed:
            count += f", {self.n_failed} failed"
        if self.n_running:
            count += f", {self.n_running} running"
        return f"{body} ({count})"


def _cells_with_status(rows: pd.DataFrame, status: str, cell_tasks: set[str]) -> int:
    sel = rows[(rows["status"] == status) & rows["cell_task"].isin(cell_tasks)]
    return int(sel["cell_id"].nunique())


def task_entry(rows: pd.DataFrame, task: str, lay: Layout) -> Entry:
    """Mean over seeds of the primary metric of ``task`` among a row's frame rows."""
    done = rows[(rows["status"] == "done") & (rows["task"] == task) & (rows["metric_index"] == 0)]
    per_seed = done.groupby("seed")["value"].mean().dropna().to_dict()
    cts = lay.task_cells.get(task, {task})
    once = not rows.empty and set(rows["method"]) <= untrained_methods()  # evaluated once
    return Entry(
        per_seed={int(k): float(v) for k, v in per_seed.items()},
        n_expected=1 if once else len(lay.seeds),
        n_failed=_cells_with_status(rows, "failed", cts),
        n_running=_cells_with_status(rows, "running", cts),
    )


def average_entry(entries: list[Entry], n_expected: int) -> Entry:
    """Per seed, the average over the given task entries; a seed counts only if every task has
    a value for it. Failures and running cells are summed."""
    if not entries:
        return Entry({}, n_expected)
    n_expected = min(n_expected, *(e.n_expected for e in entries))  # 1 for the base model
    common = set(entries[0].per_seed)
    for e in entries[1:]:
        common &= set(e.per_seed)
    per_seed = {s: float(np.mean([e.per_seed[s] for e in entries])) for s in sorted(common)}
    return Entry(
        per_seed,
        n_expected,
        n_failed=max(e.n_failed for e in entries),
        n_running=max(e.n_running for e in entries),
    )


def _params_text(rows: pd.DataFrame) -> str:
    done = rows[rows["status"] == "done"]
    tp = done["trainable_params"].dropna()
    pct = done["trainable_pct"].dropna()
    if tp.empty:
        return NOT_RUN
    text = human_count(float(tp.median()))
    if not pct.empty:
        text += f" ({float(pct.median()):.3g}%)"
    return text


def _mark_best(table: Table, entries: list[list[Entry | None]], first_col: int) -> None:
    """Bold the highest mean of each column (ties all bold) when two or more rows have one."""
    if not entries:
        return
    for j in range(len(entries[0])):
        means = [(i, e.stats[0]) for i, row in enumerate(entries) if (e := row[j]) is not None]
        means = [(i, m) for i, m in means if not math.isnan(m)]
        if len(means) < 2:
            continue
        best = max(m for _, m in means)
        for i, m in means:
            if math.isclose(m, best, rel_tol=0, abs_tol=1e-12):
                table.bold[i][first_col + j] = True


def main_tables(frame: pd.DataFrame, lay: Layout, key_prefix: str = "main") -> list[Table]:
    """One table per split-axis combination: rows = method (x row axes), columns = params, each
    task, suite averages (suites with 2+ tasks), overall average (2+ tasks)."""
    suites = list(dict.fromkeys(lay.suites[t] for t in lay.tasks))
    suite_tasks = {s: [t for t in lay.tasks if lay.suites[t] == s] for s in suites}
    avg_suites = [s for s in suites if s is not None and len(suite_tasks[s]) > 1]
    overall = len(lay.tasks) > 1
    unit = " (%)" if lay.scale == 100.0 else ""
    columns = ["method", "trainable (% of base)", *lay.tasks]
    columns += [f"{s} avg" for s in avg_suites] + (["average"] if overall else [])
    tables = []
    for combo, g in groups(frame, lay):
        title = "Main results" + unit
        if combo:
            title += " — " + ", ".join(fmt_axis(a, v) for a, v in combo)
        stem = key_prefix + (
            "_" + _slug("_".join(fmt_axis(a, v) for a, v in combo)) if combo else ""
        )
        t = Table(key=stem, title=title, columns=columns)
        all_entries: list[list[Entry | None]] = []
        for key in row_keys(g, lay):
            rows = select_row(g, key)
            per_task = {task: task_entry(rows, task, lay) for task in lay.tasks}
            ents: list[Entry | None] = [per_task[task] for task in lay.tasks]
            ents += [
                average_entry([per_task[x] for x in suite_tasks[s]], len(lay.seeds))
                for s in avg_suites
            ]
            if overall:
                ents.append(average_entry(list(per_task.values()), len(lay.seeds)))
            t.add_row([row_label(*key), _params_text(rows)] + [e.text(lay.scale) for e in ents])
            all_entries.append(ents)
        _mark_best(t, all_entries, first_col=2)
        t.notes.append(
            "Entries: mean ± sample std over seeds of the primary metric (higher is better), "
            f"n = seeds with a result out of {len(lay.seeds)} expected; best per column in bold. "
            "Averages use only seeds that have every task."
        )
        tables.append(t)
    return tables


# -- costs ------------------------------------------------------------------------------------
def human_count(x: float) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.0f}"


def human_bytes(x: float) -> str:
    for div, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(x) >= div:
            return f"{x / div:.3g} {suffix}"
    return f"{x:.0f} B"


def human_seconds(x: float) -> str:
    if x < 1:
        return f"{x * 1e3:.3g} ms"
    if x < 120:
        return f"{x:.3g} s"
    return f"{x / 60:.3g} min"


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
    keys = sorted(
        keys, key=lambda k: (lay.methods.index(k[0]), tuple(lay.value_key(a, v) for a, v in k[1]))
    )

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


# -- paired statistics ------------------------------------------------------------------------
def _select_examples(ex: pd.DataFrame, key, combo, task: str) -> pd.DataFrame:
    method, sub = key
    mask = (ex["method"] == method) & (ex["task"] == task) & (ex["metric_index"] == 0)
    for a, v in (*combo, *sub):
        if a not in ex.columns:
            continue
        col = ex[a].map(_norm)
        mask &= col.isna() if v is None else (col == v)
    return ex[mask]


def stats_tables(
    frame: pd.DataFrame, examples: pd.DataFrame, lay: Layout
) -> tuple[list[Table], pd.DataFrame]:
    """Per split group: every non-baseline row against the baseline, per task: paired mean
    difference (by example id and seed) with a 95% bootstrap interval. Returns the tables and a
    long frame of the numbers."""
    tables, long_rows = [], []
    unit = "points" if lay.scale == 100.0 else "metric units"
    examples = repeat_untrained_over_seeds(examples, lay.seeds)
    for combo, g in groups(frame, lay):
        keys = row_keys(g, lay)
        base_keys = [k for k in keys if k[0] == lay.baseline]
        suffix = ", ".join(fmt_axis(a, v) for a, v in combo)
        title = f"Paired difference to {lay.baseline} ({unit}, 95% bootstrap CI)"
        t = Table(
            key="stats" + ("_" + _slug(suffix.replace(", ", "_")) if combo else ""),
            title=title + (f" — {suffix}" if suffix else ""),
            columns=["method", *lay.tasks],
        )
        if not base_keys:
            t.notes.append(f"Baseline method '{lay.baseline}' is not in this group: no statistics.")
            tables.append(t)
            continue
        base = base_keys[0]
        refused = False
        for key in keys:
            if key == base:
                continue
            cells = [row_label(*key)]
            for task in lay.tasks:
                a = _select_examples(examples, key, combo, task)
                b = _select_examples(examples, base, combo, task)
                result = paired_comparison(a, b)
                ci = result.ci
                refused = refused or result.refused
                cells.append(paired_text(result, lay.scale))
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
                    }
                )
            t.add_row(cells)
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
    return tables, pd.DataFrame(long_rows)


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


# -- failures and footnotes -------------------------------------------------------------------
def failures_table(records: list[Record]) -> Table:
    t = Table(
        key="failures",
        title="Failed and unfinished cells",
        columns=["cell", "status", "method", "task", "seed", "axes", "error"],
    )
    for r in sorted(records, key=lambda r: (r.status, r.method, r.task, r.seed)):
        if r.status == "done":
            continue
        err = (r.error or "").strip().splitlines()
        axes = ", ".join(f"{k}={v}" for k, v in r.axes.items())
        if r.config.get("rank") is not None:
            axes = ", ".join(x for x in (f"rank={r.config['rank']}", axes) if x)
        t.add_row(
            [
                r.cell_id,
                r.status,
                r.method,
                r.task if r.eval_tasks == [r.task] else f"{r.train_data}: {','.join(r.eval_tasks)}",
                str(r.seed),
                axes,
                err[-1] if err else "",
            ]
        )
    return t


def _kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(d.items()))


def footnotes(records: list[Record]) -> list[str]:
    """Data provenance (fallback splits first), limits, protocol / sampler and training settings,
    each stated once."""
    notes: list[str] = []
    prov = {}
    for r in records:
        for p in r.provenance:
            prov[(p.task, p.split, p.source, p.content_hash, p.fallback_of, p.limit)] = p
    ordered = sorted(prov.values(), key=lambda p: (p.fallback_of is None, p.task, p.split))
    for p in ordered:
        size = f", {p.size} examples" if p.size is not None else ""
        h = f", sha {p.content_hash[:12]}" if p.content_hash else ""
        detail = f" ({p.detail})" if p.detail else ""
        lim = f", limited to {p.limit}" if p.limit is not None else ""
        if p.fallback_of:
            notes.append(
                f"**Fallback data**: {p.task} `{p.split}` split comes from {p.source}{detail} in "
                f"place of {p.fallback_of}{size}{h}{lim}."
            )
        else:
            notes.append(f"Data: {p.task} `{p.split}` from {p.source}{detail}{size}{h}{lim}.")
    limits: dict[Any, set[str]] = {}
    evals: dict[str, set[str]] = {}
    protocols: dict[str, set[str]] = {}
    trains: dict[str, set[str]] = {}
    for r in records:
        ev = dict(r.config.get("eval") or {})
        lim = ev.pop("limit", None)
        for task in r.eval_tasks:
            if lim is not None:
                limits.setdefault(lim, set()).add(task)
            evals.setdefault(task, set()).add(_kv({k: v for k, v in ev.items() if k != "steps"}))
        for s in r.scores:
            if s.protocol:
                protocols.setdefault(s.task, set()).add(s.protocol)
        tr = r.config.get("train") or {}
        if tr:
            trains.setdefault(r.config.get("suite") or r.task, set()).add(_kv(tr))
    for lim, tasks in sorted(limits.items(), key=lambda kv: str(kv[0])):
        notes.append(
            f"**Limit**: evaluation used only the first {lim} examples of "
            f"{', '.join(sorted(tasks))} (--limit)."
        )
    for task in sorted(evals):
        settings = "; ".join(s for s in sorted(evals[task]) if s)
        proto = ", ".join(sorted(protocols.get(task, set())))
        if settings or proto:
            notes.append(
                f"Evaluation of {task}: "
                + (f"protocol {proto}; " if proto else "")
                + (f"settings {settings}" if settings else "")
            )
    steps = sorted({s.steps for r in records for s in r.scores if s.steps is not None})
    if steps:
        notes.append(f"Sampling steps evaluated: {', '.join(map(str, steps))}.")
    for suite in sorted(trains, key=str):
        notes.append(f"Training ({suite}): " + " | ".join(sorted(trains[suite])))
    return notes + training_data_notes(records)


def training_data_notes(records: list[Record]) -> list[str]:
    """What each adapter trained on (a suite training set or each task's own data) and which
    tasks it was scored on; why train.data=auto chose as it did."""
    scored: dict[str, set[str]] = {}
    reasons: set[str] = set()
    for r in records:
        scored.setdefault(r.train_data, set()).update(r.eval_tasks)
        if r.config.get("train_data_note"):
            reasons.add(str(r.config["train_data_note"]))
    notes = []
    suite = {k: v for k, v in scored.items() if k.endswith("(suite)")}
    if suite:
        notes.append(
            "**Training data**: one adapter per suite training set, scored on several tasks: "
            + "; ".join(f"{k} -> {', '.join(sorted(v))}" for k, v in sorted(suite.items()))
            + "."
        )
    per_task = sorted(k.split(" ", 1)[0] for k in scored if not k.endswith("(suite)"))
    if per_task and suite:
        notes.append(f"**Training data**: one adapter per task for {', '.join(per_task)}.")
    notes += [f"**Training data**: {reason}." for reason in sorted(reasons)]
    return notes
