"""Curves against the fine-tuning sample ratio with seed bands, drawn without pyplot's global
state (the report's convention, ``reports/plots.py``): a line is the mean over seeds, its band
the range (min to max) over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from reports.theory.frame import seed_bands

X = "alpha_ft"
LABELS = {
    "test_error": "test error (MSE per sequence)",
    "misalignment": "1 - cos(u, u*)",
    "excess_error": "test error - oracle error",
    "alignment": "cos(u, u*)",
}


def panels(n: int, title: str) -> tuple[Figure, list]:
    fig = Figure(figsize=(5.2 * n, 4.0))
    axes = [fig.add_subplot(1, n, i + 1) for i in range(n)]
    fig.suptitle(title, fontsize=10)
    return fig, axes


def band(ax, df: pd.DataFrame, metric: str, label: str, color, dashed: bool = False) -> None:
    """One mean line with its min-max band over seeds, against alpha_ft."""
    s = seed_bands(df, [X], metric).sort_values(X)
    ax.plot(s[X], s["mean"], "--" if dashed else "-", color=color, label=label, marker="o", ms=3)
    ax.fill_between(s[X], s["min"], s["max"], color=color, alpha=0.15, linewidth=0)


def finish(ax, metric: str, legend: bool = False, symlog: bool = False) -> None:
    ax.set_xlabel("alpha_ft = n_ft / d")
    ax.set_ylabel(LABELS.get(metric, metric))
    if symlog:
        ax.set_yscale("symlog", linthresh=1e-3)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=7, loc="best")


def colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.0, 0.85, max(n, 1))]
