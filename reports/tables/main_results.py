"""The main results table: one entry per method row and task, mean ± std over seeds, with every
missing, failed or running seed visible and the best mean per column in bold."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.pairing import untrained_methods
from reports.stats import mean_std
from reports.tables.labels import short_labels
from reports.tables.layout import Layout, _slug, fmt_axis, groups, row_keys, row_label, select_row
from reports.tables.table import NOT_RUN, Table
from reports.tables.units import human_count


@dataclass
class Entry:
    per_seed: dict[int, float]
    n_expected: int
    n_failed: int = 0
    n_running: int = 0

    @property
    def stats(self) -> tuple[float, float, int]:
        return mean_std(list(self.per_seed.values()))

    def text(self, scale: float, terse: bool = False) -> str:
        """``62.9 ± 1.3 (n=2)``; ``terse`` (the terminal) leaves the count out when every
        expected seed has a result."""
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
        if terse and n == self.n_expected and not self.n_failed and not self.n_running:
            return body
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


def main_tables(
    frame: pd.DataFrame, lay: Layout, key_prefix: str = "main", terse: bool = False
) -> list[Table]:
    """One table per split-axis combination: rows = method (x row axes), columns = params, each
    task, suite averages (suites with 2+ tasks), overall average (2+ tasks).

    ``terse`` builds the terminal's version: short row labels that stay distinct
    (``nara[core_lr×5]``, spelled out in the notes), entries without the seed count where no
    seed is missing, and a header that wraps."""
    suites = list(dict.fromkeys(lay.suites[t] for t in lay.tasks))
    suite_tasks = {s: [t for t in lay.tasks if lay.suites[t] == s] for s in suites}
    avg_suites = [s for s in suites if s is not None and len(suite_tasks[s]) > 1]
    overall = len(lay.tasks) > 1
    unit = " (%)" if lay.scale == 100.0 else ""
    columns = ["method", "trainable\n(% of base)" if terse else "trainable (% of base)", *lay.tasks]
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
        keys = row_keys(g, lay)
        labels, legend = short_labels(keys) if terse else ({k: row_label(*k) for k in keys}, [])
        for key in keys:
            rows = select_row(g, key)
            per_task = {task: task_entry(rows, task, lay) for task in lay.tasks}
            ents: list[Entry | None] = [per_task[task] for task in lay.tasks]
            ents += [
                average_entry([per_task[x] for x in suite_tasks[s]], len(lay.seeds))
                for s in avg_suites
            ]
            if overall:
                ents.append(average_entry(list(per_task.values()), len(lay.seeds)))
            texts = [e.text(lay.scale, terse) for e in ents]
            t.add_row([labels[key], _params_text(rows), *texts])
            all_entries.append(ents)
        _mark_best(t, all_entries, first_col=2)
        if terse:
            t.notes += legend
            seeds = f"{len(lay.seeds)} seed" + ("s" if len(lay.seeds) != 1 else "")
            t.notes.append(
                f"Mean ± std over {seeds}; (n=...) marks a seed that is missing, failed or "
                "running. Full labels and entries: the report."
            )
            tables.append(t)
            continue
        t.notes.append(
            "Entries: mean ± sample std over seeds of the primary metric (higher is better), "
            f"n = seeds with a result out of {len(lay.seeds)} expected; best per column in bold. "
            "Averages use only seeds that have every task."
        )
        tables.append(t)
    return tables
