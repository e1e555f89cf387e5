"""Noise-level analysis plots (PNG), drawn without pyplot's global state (Agg canvas).

- ``noise_loss.png`` / ``noise_loss_diff.png``: validation loss per noise bin (1/t-weighted loss
  and plain cross-entropy per masked token) for every method, and its difference to the baseline;
- ``steps.png``: accuracy against the number of sampling steps (only when several were run);
- ``pareto.png``: average score against trainable parameters, Pareto front marked;
- ``nara_core.png``: ||C(t) - I||_F and the singular values of C(t) over t in [0, 1];
- ``nara_update_norms.png``: ||B C(t) A||_F per layer type over t.

The two NaRA plots read saved adapters through ``methods.nara.core_trajectory`` and
``methods.nara.update_norms``; when that module is missing or raises, they are skipped with a note.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from reports.tables import Layout, _norm, fmt_axis, row_label
from results.schema import Record
from results.store import atomic_write_bytes

log = logging.getLogger(__name__)

T_GRID = np.linspace(0.0, 1.0, 51)
MAX_NARA_ADAPTERS = 4


def save_figure(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def _record_axes(r: Record) -> dict[str, Any]:
    return {"rank": r.config.get("rank"), **{k: _norm(v) for k, v in r.axes.items()}}


def series_key(method: str, axes: dict[str, Any], lay: Layout) -> tuple[str, tuple, tuple]:
    """(method, row-axis values, split-axis values except steps): one line per key."""
    sub = tuple((a, _norm(axes.get(a))) for a in lay.row_axes if a != "steps")
    split = tuple((a, _norm(axes.get(a))) for a in lay.split_axes if a != "steps")
    return method, sub, split


def series_label(key: tuple[str, tuple, tuple]) -> str:
    method, sub, split = key
    label = row_label(method, sub)
    if split:
        label += " [" + ", ".join(fmt_axis(a, v) for a, v in split) + "]"
    return label


def _key_order(lay: Layout) -> Callable[[tuple], tuple]:
    def order(k: tuple) -> tuple:
        m = lay.methods.index(k[0]) if k[0] in lay.methods else len(lay.methods)
        return (
            tuple(lay.value_key(a, v) for a, v in k[2]),
            m,
            tuple(lay.value_key(a, v) for a, v in k[1]),
        )

    return order


# -- validation loss per noise bin ------------------------------------------------------------
def _bin_curves(records: list[Record], lay: Layout) -> dict[tuple, dict[str, Any]]:
    """(series key, task) -> {mid, weighted (seeds x bins), ce (seeds x bins)}."""
    acc: dict[tuple, dict[str, Any]] = {}
    for r in records:
        if r.status != "done" or not r.val_loss_bins:
            continue
        key = (series_key(r.method, _record_axes(r), lay), r.task)
        bins = sorted(r.val_loss_bins, key=lambda b: b.bin_lo)
        mid = np.array([(b.bin_lo + b.bin_hi) / 2 for b in bins])
        w = np.array([np.nan if b.weighted_loss is None else b.weighted_loss for b in bins])
        ce = np.array([np.nan if b.ce_per_token is None else b.ce_per_token for b in bins])
        slot = acc.setdefault(key, {"mid": mid, "weighted": [], "ce": []})
        if len(mid) != len(slot["mid"]):
            log.warning(
                "cell %s has %d noise bins, expected %d", r.cell_id, len(mid), len(slot["mid"])
            )
            continue
        slot["weighted"].append(w)
        slot["ce"].append(ce)
    return acc


def _nanmean(rows: list[np.ndarray]) -> np.ndarray:
    arr = np.vstack(rows)
    with np.errstate(all="ignore"):
        out = np.nanmean(arr, axis=0) if np.isfinite(arr).any() else np.full(arr.shape[1], np.nan)
    return out


def _baseline_key(key: tuple, keys: list[tuple], baseline: str) -> tuple | None:
    """The baseline series to compare ``key`` with: same split values, same row values if the
    baseline has them, else the baseline's first series."""
    cands = [k for k in keys if k[0] == baseline and k[2] == key[2]]
    same = [k for k in cands if k[1] == key[1]]
    return (same or cands or [None])[0]


def plot_noise_loss(
    records: list[Record], lay: Layout, out_dir: Path
) -> tuple[list[Path], list[str]]:
    curves = _bin_curves(records, lay)
    notes: list[str] = []
    if not curves:
        return [], ["No validation loss per noise bin in the records: noise-loss plots skipped."]
    tasks = [t for t in dict.fromkeys(k[1] for k in curves)]
    keys = sorted({k[0] for k in curves}, key=_key_order(lay))
    metrics = (("weighted", "1/t-weighted loss"), ("ce", "CE per masked token"))
    paths = []

    colors = {k: f"C{i % 10}" for i, k in enumerate(keys)}
    fig = Figure(figsize=(11, 3.4 * len(tasks)))
    fig.subplots_adjust(hspace=0.45, wspace=0.25)
    axs = fig.subplots(len(tasks), 2, squeeze=False)
    for i, task in enumerate(tasks):
        for j, (m, name) in enumerate(metrics):
            ax = axs[i][j]
            for key in keys:
                c = curves.get((key, task))
                if c is None:
                    continue
                ax.plot(
                    c["mid"],
                    _nanmean(c[m]),
                    marker="o",
                    ms=3,
                    label=series_label(key),
                    color=colors[key],
                )
                if len(c[m]) > 1:  # a band from the lowest to the highest seed
                    with np.errstate(all="ignore"):
                        lo, hi = np.nanmin(np.vstack(c[m]), 0), np.nanmax(np.vstack(c[m]), 0)
                    ax.fill_between(c["mid"], lo, hi, color=colors[key], alpha=0.15, lw=0)
            ax.set_title(f"{task}: {name}")
            ax.set_xlabel("noise level t (bin centre)")
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
    axs[0][0].legend(fontsize=7)
    paths.append(save_figure(fig, out_dir / "noise_loss.png"))

    fig = Figure(figsize=(11, 3.4 * len(tasks)))
    fig.subplots_adjust(hspace=0.45, wspace=0.25)
    axs = fig.subplots(len(tasks), 2, squeeze=False)
    drew = False
    for i, task in enumerate(tasks):
        for j, (m, name) in enumerate(metrics):
            ax = axs[i][j]
            for key in keys:
                if key[0] == lay.baseline:
                    continue
                b = curves.get((_baseline_key(key, keys, lay.baseline), task))
                c = curves.get((key, task))
                if b is None or c is None or len(b["mid"]) != len(c["mid"]):
                    continue
                ax.plot(
                    c["mid"],
                    _nanmean(c[m]) - _nanmean(b[m]),
                    marker="o",
                    ms=3,
                    label=series_label(key),
                    color=colors[key],
                )
                drew = True
            ax.axhline(0.0, color="k", lw=0.8)
            ax.set_title(f"{task}: {name}, minus {lay.baseline}")
            ax.set_xlabel("noise level t (bin centre)")
            ax.set_ylabel(f"Δ {name}")
            ax.grid(alpha=0.3)
    if drew:
        axs[0][0].legend(fontsize=7)
    else:
        axs[0][0].text(
            0.5,
            0.5,
            f"no '{lay.baseline}' curves to compare with",
            ha="center",
            va="center",
            transform=axs[0][0].transAxes,
        )
        notes.append(
            f"Baseline '{lay.baseline}' has no noise-bin losses: difference plot is empty."
        )
    paths.append(save_figure(fig, out_dir / "noise_loss_diff.png"))
    return paths, notes


# -- accuracy against sampling steps ----------------------------------------------------------
def plot_steps(frame: pd.DataFrame, lay: Layout, out_dir: Path) -> Path | None:
    scored = frame[(frame["status"] == "done") & (frame["metric_index"] == 0)]
    scored = scored[scored["steps"].notna()]
    if scored["steps"].nunique() < 2:
        return None
    tasks = [t for t in lay.tasks if t in set(scored["task"])]
    fig = Figure(figsize=(5.5 * len(tasks), 3.8))
    axs = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axs, tasks, strict=True):
        sub = scored[scored["task"] == task]
        lines: dict[tuple, dict[int, list[float]]] = {}
        for _, r in sub.iterrows():
            key = series_key(r["method"], {a: r[a] for a in (*lay.row_axes, *lay.split_axes)}, lay)
            per_steps = lines.setdefault(key, {})
            per_steps.setdefault(int(r["steps"]), []).append(float(r["value"]) * lay.scale)
        for key in sorted(lines, key=_key_order(lay)):
            xs = sorted(lines[key])
            ys = [np.mean(lines[key][x]) for x in xs]
            es = [np.std(lines[key][x], ddof=1) if len(lines[key][x]) > 1 else 0.0 for x in xs]
            ax.errorbar(xs, ys, yerr=es, marker="o", ms=3, capsize=2, label=series_label(key))
        ax.set_xscale("log", base=2)
        ticks = sorted({int(x) for x in sub["steps"]})
        ax.set_xticks(ticks, labels=[str(x) for x in ticks])
        ax.minorticks_off()
        ax.set_title(task)
        ax.set_xlabel("sampling steps")
        ax.set_ylabel("score" + (" (%)" if lay.scale == 100.0 else ""))
        ax.grid(alpha=0.3)
    axs[0].legend(fontsize=7)
    return save_figure(fig, out_dir / "steps.png")


# -- Pareto: average score against trainable parameters ---------------------------------------
def pareto_points(frame: pd.DataFrame, lay: Layout) -> pd.DataFrame:
    """Per series: mean trainable params and the average over tasks of the mean over seeds
    (at the largest step count when several were evaluated)."""
    done = frame[(frame["status"] == "done") & (frame["metric_index"] == 0)]
    if done["steps"].notna().any():
        done = done[done["steps"] == done["steps"].max()]
    pts = []
    groups: dict[tuple, list[int]] = {}
    for idx, r in done.iterrows():
        key = series_key(r["method"], {a: r[a] for a in (*lay.row_axes, *lay.split_axes)}, lay)
        groups.setdefault(key, []).append(idx)
    for key, idx in groups.items():
        rows = done.loc[idx]
        per_task = rows.groupby("task")["value"].mean()
        params = rows["trainable_params"].dropna()
        if params.empty or per_task.empty:
            continue
        pts.append(
            {
                "label": series_label(key),
                "method": key[0],
                "params": float(params.astype(float).mean()),
                "score": float(per_task.mean()) * lay.scale,
                "n_tasks": int(per_task.size),
            }
        )
    df = pd.DataFrame(pts, columns=["label", "method", "params", "score", "n_tasks"])
    if not df.empty:
        order = df.sort_values(["params", "score"], ascending=[True, False])
        best, front = -math.inf, []
        for i, r in order.iterrows():
            if r["score"] > best:
                front.append(i)
                best = r["score"]
        df["pareto"] = df.index.isin(front)
    return df


def plot_pareto(frame: pd.DataFrame, lay: Layout, out_dir: Path) -> Path | None:
    pts = pareto_points(frame, lay)
    if pts.empty:
        return None
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    for method in [m for m in lay.methods if m in set(pts["method"])]:
        p = pts[pts["method"] == method]
        ax.scatter(p["params"], p["score"], label=method, s=30)
    for _, r in pts.iterrows():
        ax.annotate(
            r["label"],
            (r["params"], r["score"]),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
    front = pts[pts["pareto"]].sort_values("params")
    ax.plot(front["params"], front["score"], color="k", lw=0.8, ls="--", label="Pareto front")
    if pts["params"].min() > 0:
        ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("average score" + (" (%)" if lay.scale == 100.0 else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, out_dir / "pareto.png")


# -- NaRA: the noise-dependent core -----------------------------------------------------------
def nara_adapters(records: list[Record], lay: Layout) -> list[tuple[str, Path]]:
    """One saved NaRA adapter per series (lowest seed, then first task), at most
    :data:`MAX_NARA_ADAPTERS`."""
    chosen: dict[tuple, Record] = {}
    for r in sorted(records, key=lambda r: (r.seed, r.task)):
        if r.method != "nara" or r.status != "done" or r.adapter_path() is None:
            continue
        chosen.setdefault(series_key(r.method, _record_axes(r), lay), r)
    keys = sorted(chosen, key=_key_order(lay))[:MAX_NARA_ADAPTERS]
    return [
        (f"{series_label(k)} · {chosen[k].task} seed {chosen[k].seed}", chosen[k].adapter_path())
        for k in keys
    ]


def plot_nara(
    records: list[Record], lay: Layout, out_dir: Path, ts: np.ndarray = T_GRID
) -> tuple[list[Path], list[str]]:
    """``nara_core.png`` and ``nara_update_norms.png``; skipped with a note when there is no NaRA
    adapter or ``methods.nara`` is missing or raises."""
    adapters = nara_adapters(records, lay)
    if not adapters:
        return [], []
    try:
        from methods import nara  # lazy: another package, and optional for the report

        core_trajectory = nara.core_trajectory
        update_norms = nara.update_norms
    except Exception as e:  # noqa: BLE001 - any failure means "skip with a note"
        return [], [f"NaRA core plots skipped: methods.nara unavailable ({type(e).__name__}: {e})."]
    notes: list[str] = []
    cores: list[tuple[str, np.ndarray]] = []
    norms: list[tuple[str, dict[str, np.ndarray]]] = []
    for label, path in adapters:
        try:
            c = np.asarray(core_trajectory(path, ts), dtype=float)
            if c.ndim != 3 or c.shape[0] != len(ts) or c.shape[1] != c.shape[2]:
                raise ValueError(f"core_trajectory returned shape {c.shape}, expected (T, r, r)")
            cores.append((label, c))
        except Exception as e:  # noqa: BLE001
            notes.append(f"NaRA core of {label} skipped ({type(e).__name__}: {e}).")
        try:
            u = {k: np.asarray(v, dtype=float) for k, v in update_norms(path, ts).items()}
            norms.append((label, u))
        except Exception as e:  # noqa: BLE001
            notes.append(f"NaRA update norms of {label} skipped ({type(e).__name__}: {e}).")
    paths = []
    if cores:
        fig = Figure(figsize=(4.2 * (1 + len(cores)), 3.6))
        axs = fig.subplots(1, 1 + len(cores), squeeze=False)[0]
        for label, c in cores:
            eye = np.eye(c.shape[1])
            axs[0].plot(ts, np.linalg.norm(c - eye, ord="fro", axis=(1, 2)), label=label)
        axs[0].set_title("||C(t) - I||_F")
        axs[0].set_xlabel("noise level t")
        axs[0].grid(alpha=0.3)
        axs[0].legend(fontsize=6)
        for ax, (label, c) in zip(axs[1:], cores, strict=True):
            sv = np.linalg.svd(c, compute_uv=False)  # (T, r), descending
            for k in range(sv.shape[1]):
                ax.plot(ts, sv[:, k], lw=0.9)
            ax.set_title(f"singular values of C(t)\n{label}", fontsize=8)
            ax.set_xlabel("noise level t")
            ax.grid(alpha=0.3)
        paths.append(save_figure(fig, out_dir / "nara_core.png"))
    if norms:
        fig = Figure(figsize=(4.5 * len(norms), 3.6))
        axs = fig.subplots(1, len(norms), squeeze=False)[0]
        for ax, (label, u) in zip(axs, norms, strict=True):
            for layer_type, v in sorted(u.items()):
                ax.plot(ts, v, label=layer_type)
            ax.set_title(f"||B C(t) A||_F per layer type\n{label}", fontsize=8)
            ax.set_xlabel("noise level t")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
        paths.append(save_figure(fig, out_dir / "nara_update_norms.png"))
    return paths, notes
