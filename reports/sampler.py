"""The fast-sampling section of a report: shown when a grid evaluates several sampler settings
(``eval.cache`` / ``eval.parallel`` / ``eval.cache_refresh``).

Per method, task and sampler: accuracy (mean over seeds), tokens/s, forwards per token, and the
accuracy difference to the plain sampler with its paired 95% bootstrap interval (pairs: the same
example, the same seed, the same sampling steps, so a noise-aware adapter's staleness cost stands
beside LoRA's). A second table scores each method and sampler by AUP, d3LLM's accuracy under
parallelism (:mod:`reports.aup`). The plot shows accuracy against tokens per forward.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from reports.aup import ALPHA, Y_MIN_OFFSET, aup
from reports.stats import paired_bootstrap
from reports.tables import Table, method_order
from results.schema import Record

PLAIN = "plain"


def sampler_rows(records: list[Record]) -> pd.DataFrame:
    """One row per cell x primary generative score: method, seed, task, steps, sampler, accuracy
    and what the sampler did."""
    rows = []
    for r in records:
        if r.status != "done":
            continue
        primary = {}
        for s in r.scores:  # the first score of a (task, steps, sampler) is its primary metric
            if s.steps is None:
                continue
            primary.setdefault((s.task, s.steps, s.sampler or PLAIN), s)
        for (task, steps, sampler), s in primary.items():
            if sampler.startswith("flow="):  # L2D's flow settings: reports/flow.py
                continue
            stats = s.sampling or {}
            rows.append(
                {
                    "cell_id": r.cell_id,
                    "method": r.method,
                    "seed": r.seed,
                    "task": task,
                    "steps": steps,
                    "sampler": sampler,
                    "value": float(s.value),
                    "tokens_per_s": stats.get("tokens_per_s"),
                    "forwards_per_token": stats.get("forwards_per_token"),
                    "cache_used": stats.get("cache_used"),
                }
            )
    return pd.DataFrame(rows)


def has_sampler_axis(records: list[Record]) -> bool:
    rows = sampler_rows(records)
    return not rows.empty and rows["sampler"].nunique() > 1


def sampler_table(records: list[Record], examples: pd.DataFrame) -> Table:
    rows = sampler_rows(records)
    table = Table(
        key="sampler",
        title="Fast sampling: accuracy, speed and the difference to the plain sampler",
        columns=[
            "method",
            "task",
            "steps",
            "sampler",
            "accuracy",
            "tokens/s",
            "forwards/token",
            "Δ vs plain [95% CI]",
        ],
    )
    labels = list(dict.fromkeys([PLAIN, *rows["sampler"]]))
    prim = examples[examples["metric_index"] == 0] if not examples.empty else examples
    for method in method_order(rows["method"]):
        for (task, steps), group in rows[rows["method"] == method].groupby(["task", "steps"]):
            for label in labels:
                sub = group[group["sampler"] == label]
                if sub.empty:
                    continue
                acc = sub["value"].mean()
                table.add_row(
                    [
                        method,
                        str(task),
                        str(int(steps)),
                        label,
                        _fmt(acc * 100 if acc <= 1 else acc, 1),
                        _fmt(sub["tokens_per_s"].astype(float).mean(), 1),
                        _fmt(sub["forwards_per_token"].astype(float).mean(), 3),
                        _difference(prim, method, task, steps, label),
                    ]
                )
    fallback = rows[
        rows["cache_used"].notna()
        & rows["sampler"].str.contains("cache=")
        & (rows["cache_used"] == "none")
    ]
    if not fallback.empty:
        table.notes.append(
            "Some cached settings ran without a cache (the model family has no cache backend, or "
            "the adapter reads the mask layout of the whole input): their speed is the plain one."
        )
    table.notes.append(
        "Δ: accuracy points of the setting minus the plain sampler, paired by example and seed "
        "at the same steps, with a 95% bootstrap interval. forwards/token counts each row of "
        "each forward once."
    )
    return table


def sampler_family(label: str) -> str:
    """A sampler setting without its parallel rule's number: the settings of one family (e.g.
    ``parallel=threshold:0.8`` and ``:0.9``) are the points of one AUP curve."""
    return re.sub(r"(parallel=[a-z]+):[0-9.eE+-]+", r"\1", label)


def aup_table(records: list[Record]) -> Table:
    """AUP per method, task and steps: for each sampler family (its points: the family's
    settings) and for all of the method's settings together."""
    rows = sampler_rows(records)
    rows = rows[rows["forwards_per_token"].notna()]
    table = Table(
        key="sampler_aup",
        title="Fast sampling: AUP (accuracy under parallelism)",
        columns=["method", "task", "steps", "sampler", "points (TPF, accuracy)", "AUP"],
    )
    if rows.empty:
        return table
    rows = rows.assign(
        tpf=1.0 / rows["forwards_per_token"].astype(float),
        acc=rows["value"].astype(float).map(lambda v: v * 100 if v <= 1 else v),
    )
    for (task, steps), group in rows.groupby(["task", "steps"]):
        means = group.groupby(["method", "sampler"])[["tpf", "acc"]].mean()
        y_max = float(means["acc"].max())
        for method in method_order(group["method"]):
            mine = means.loc[method]
            labels = sorted(mine.index, key=lambda s: (s != PLAIN, float(mine.loc[s, "tpf"]), s))
            curves = {}
            for label in labels:
                curves.setdefault(sampler_family(label), []).append(label)
            if len(labels) > 1:
                curves["all settings"] = labels
            for name, members in curves.items():
                points = [(float(mine.loc[s, "tpf"]), float(mine.loc[s, "acc"])) for s in members]
                shown = ", ".join(f"({r:.2f}, {y:.1f})" for r, y in points)
                table.add_row(
                    [method, str(task), str(int(steps)), name, shown, f"{aup(points, y_max):.1f}"]
                )
    table.notes.append(
        "AUP (accuracy under parallelism; Qian et al., the d3LLM leaderboard's metric): the points "
        "(tokens per forward per row, accuracy in %) sorted by TPF, those below the first one's "
        f"accuracy minus {Y_MIN_OFFSET:g} dropped, AUP = rho_1 y_1 + sum of trapezoids "
        "(rho_i - rho_i-1) (y_i W(y_i) + y_i-1 W(y_i-1)) / 2 with W(y) = min(exp(-"
        f"{ALPHA:g} (1 - y / y_max)), 1), y_max the best accuracy of any method and sampler on "
        "the task. A single point scores TPF x accuracy; higher is better. Accuracy: mean over "
        "seeds."
    )
    return table


def _difference(examples: pd.DataFrame, method, task, steps, label: str) -> str:
    if label == PLAIN or examples.empty:
        return "—"
    mine = examples[
        (examples["method"] == method) & (examples["task"] == task) & (examples["steps"] == steps)
    ]
    ci = paired_bootstrap(mine[mine["sampler"] == label], mine[mine["sampler"] == PLAIN])
    if ci.n == 0:
        return "n/a"
    return f"{ci.mean * 100:+.1f} [{ci.lo * 100:+.1f}, {ci.hi * 100:+.1f}]"


def _fmt(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def plot_accuracy_vs_parallelism(records: list[Record], out_dir: Path) -> Path | None:
    """Mean accuracy over tasks and seeds against tokens per forward, one point per method and
    sampler (the plain sampler at its own tokens per forward)."""
    from reports.plots import save_figure

    rows = sampler_rows(records)
    rows = rows[rows["forwards_per_token"].notna()]
    if rows.empty or rows["sampler"].nunique() < 2:
        return None
    rows = rows.assign(tpf=1.0 / rows["forwards_per_token"].astype(float))
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    for method in method_order(rows["method"]):
        sub = rows[rows["method"] == method].groupby("sampler")[["tpf", "value"]].mean()
        ax.plot(sub["tpf"], sub["value"] * 100, "o", label=method)
        for label, point in sub.iterrows():
            ax.annotate(str(label), (point["tpf"], point["value"] * 100), fontsize=7)
    ax.set_xlabel("tokens per forward (per row)")
    ax.set_ylabel("accuracy (mean over tasks and seeds)")
    ax.set_title("Accuracy under parallel decoding")
    ax.legend(fontsize=8)
    return save_figure(fig, out_dir / "sampler_parallelism.png")


def sampler_markdown(records: list[Record], examples: pd.DataFrame, out: Path, write_table):
    """The section's markdown lines ([] when the grid has a single sampler setting)."""
    if not has_sampler_axis(records):
        return []
    lines = ["## Fast sampling", ""]
    lines += write_table(sampler_table(records, examples), out)
    lines += write_table(aup_table(records), out)
    path = plot_accuracy_vs_parallelism(records, out)
    if path is not None:
        lines += [f"![Accuracy against tokens per forward]({path.name})", ""]
    return lines
