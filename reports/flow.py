"""The L2D section of a report: accuracy against flow evaluations per token, per ODE solver, with
the base model and LoRA (DoRA) on the same autoregressive base as horizontal references.

Shown when some record has L2D scores (sampler labels ``flow=<solver>[:<steps>]``). Every row
says the flow evaluations per generated token the evaluation actually made (the final forward
included), measured tokens/s, and the trainable parameters beside the references'.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from reports.tables import Table, method_order
from results.schema import Record

FLOW_PREFIX = "flow="
REFERENCES = ("base", "lora", "dora")


def flow_rows(records: list[Record]) -> pd.DataFrame:
    """One row per cell x primary generative score of L2D (solver, steps) and of the references
    on an autoregressive base (cells of the same run)."""
    rows = []
    for r in records:
        if r.status != "done":
            continue
        seen = set()
        for s in r.scores:  # the first score of a (task, sampler) is its primary metric
            label = s.sampler or "plain"
            if s.steps is None or (s.task, label) in seen:
                continue
            seen.add((s.task, label))
            stats = s.sampling or {}
            flow = label.startswith(FLOW_PREFIX)
            if not flow and r.method not in REFERENCES:
                continue
            solver, _, steps = (
                label.removeprefix(FLOW_PREFIX).partition(":") if flow else ("", "", "")
            )
            rows.append(
                {
                    "method": r.method,
                    "seed": r.seed,
                    "task": s.task,
                    "label": label,
                    "solver": solver,
                    "l2d_steps": int(steps) if steps else None,
                    "value": float(s.value),
                    "flow_evals_per_token": stats.get("flow_evals_per_token"),
                    "tokens_per_s": stats.get("tokens_per_s"),
                    "trainable": r.costs.trainable_params,
                }
            )
    frame = pd.DataFrame(rows)
    if frame.empty or not frame["label"].str.startswith(FLOW_PREFIX).any():
        return pd.DataFrame()
    return frame


def _pct(value: float) -> float:
    return value * 100 if value <= 1 else value


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def flow_table(rows: pd.DataFrame) -> Table:
    table = Table(
        key="l2d_flow",
        title="L2D: accuracy against flow evaluations per token",
        columns=[
            "task",
            "method",
            "solver",
            "flow steps",
            "flow evals/token",
            "accuracy (mean ± sd over seeds)",
            "seeds",
            "tokens/s",
            "trainable params",
        ],
    )
    for task, group in rows.groupby("task", sort=True):
        for method in method_order(group["method"]):
            mine = group[group["method"] == method]
            keys = ["solver", "l2d_steps"] if method not in REFERENCES else ["label"]
            for _, sub in mine.groupby(keys, dropna=False, sort=True):
                first = sub.iloc[0]
                acc = sub["value"].map(_pct)
                sd = acc.std(ddof=1) if len(acc) > 1 else float("nan")
                steps = first["l2d_steps"]
                table.add_row(
                    [
                        str(task),
                        method,
                        first["solver"] or "—",
                        "adaptive" if first["solver"] and pd.isna(steps) else _fmt(steps, 0),
                        _fmt(sub["flow_evals_per_token"].astype(float).mean(), 2),
                        f"{acc.mean():.1f}" + ("" if math.isnan(sd) else f" ± {sd:.1f}"),
                        str(sub["seed"].nunique()),
                        _fmt(sub["tokens_per_s"].astype(float).mean(), 1),
                        str(int(first["trainable"])),
                    ]
                )
    table.notes.append(
        "flow evals/token: flow-stream evaluations per generated token as measured (the final "
        "forward at t = 1 included; a velocity at t = 1 is 0 and costs none). The base and LoRA "
        "decode with the base's own head (no flow)."
    )
    return table


def plot_flow(rows: pd.DataFrame, out_dir: Path) -> Path | None:
    from reports.plots import save_figure

    flow = rows[rows["label"].str.startswith(FLOW_PREFIX)]
    tasks = sorted(flow["task"].unique())
    if not tasks:
        return None
    fig = Figure(figsize=(5.0 * len(tasks), 4.0))
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        mine = flow[flow["task"] == task]
        for solver, sub in mine.groupby("solver", sort=True):
            curve = sub.groupby("flow_evals_per_token")["value"].mean().sort_index()
            ax.plot(curve.index, curve.map(_pct), "o-", label=f"L2D {solver}")
        refs = rows[(rows["task"] == task) & rows["method"].isin(REFERENCES)]
        colours = {"base": "black", "lora": "tab:red", "dora": "tab:purple"}
        for method, sub in refs.groupby("method", sort=True):
            value = _pct(sub["value"].mean())
            ax.axhline(value, linestyle="--", linewidth=1, color=colours[method], label=method)
        ticks = sorted({float(v) for v in mine["flow_evals_per_token"].dropna()})
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("flow evaluations per token")
        ax.set_ylabel("accuracy (mean over seeds)")
        ax.set_title(str(task))
        ax.legend(fontsize=7)
    return save_figure(fig, out_dir / "l2d_flow.png")


def flow_markdown(records: list[Record], out: Path, write_table) -> list[str]:
    """The section's lines ([] when no record has L2D scores)."""
    rows = flow_rows(records)
    if rows.empty:
        return []
    lines = ["## L2D: flow steps and solvers", ""]
    lines += write_table(flow_table(rows), out)
    path = plot_flow(rows, out)
    if path is not None:
        lines += [f"![Accuracy against flow evaluations per token]({path.name})", ""]
    return lines
