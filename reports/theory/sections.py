"""The report sections of the three theory presets (``report.check`` in the preset names one).

Each section shows what it assumes, its plots (mean over seeds with the seed range as a band) and
its table (also written as CSV). The figures are built from the records alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from reports.plots import save_figure
from reports.tables import Table
from reports.theory.fit import NoiseFit, control_curve, fit_noise
from reports.theory.frame import alpha_pre_label, theory_frame
from reports.theory.plots import band, colors, finish, panels

ASSUMPTIONS = (
    "**Assumptions.** The paper (arXiv 2606.05899) was not readable when this sandbox was built; "
    "its data model is inferred from the authors' predecessors (../shared/notes/lora-theory.md). "
    "Assumed here: one tied single-head attention layer (attention-indexed model) as teacher and "
    "student; i.i.d. Gaussian tokens and Gaussian teachers; n_pre = alpha_pre d^2 and "
    "n_ft = alpha_ft d; a rank-one teacher shift u* u*^T / sqrt(d) and the update u u^T / sqrt(d); "
    "squared loss with a ridge; Adam from a spectral start; additive Gaussian label noise as the "
    "control of the effective-noise claim; both active-selection rules. Only the qualitative "
    "claims are tested, at finite d, with no theoretical curve to compare with."
)
FIT_METRIC = "misalignment"  # the effective noise is fitted on the learned direction ...
CHECK_METRIC = "excess_error"  # ... and checked, unfitted, on the test error above the oracle's

TableWriter = Callable[[Table, Path], list[str]]


def _pm(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "-"
    sd = values.std() if len(values) > 1 else 0.0
    return f"{values.mean():.3g} ± {sd:.2g}"


def _figure(title: str, path: Path, lines: list[str], fig) -> None:
    save_figure(fig, path)
    lines += [f"### {title}", "", f"![{title}]({path.name})", ""]


def _mean_curves(df: pd.DataFrame, metric: str, by: str) -> tuple[np.ndarray, np.ndarray, list]:
    """(values of ``by``, matrix of seed-mean ``metric`` per value x alpha_ft, alpha_ft list)."""
    table = df.groupby([by, "alpha_ft"])[metric].mean().unstack("alpha_ft").sort_index()
    return table.index.to_numpy(float), table.to_numpy(float), list(table.columns)


# -- lora-theory-noise -------------------------------------------------------------------------
def paired_fits(df: pd.DataFrame, rows: pd.DataFrame, metric: str) -> list[NoiseFit]:
    """Delta_eff of ``rows`` (one base) fitted seed by seed against the exact-base control of the
    same seed: same teacher, same fine-tuning inputs and test set, so their variation cancels."""
    exact = df[np.isinf(df["alpha_pre"])]
    deltas = []
    for seed, seed_rows in rows.groupby("seed"):
        control = exact[exact["seed"] == seed].pivot_table(
            index="noise", columns="alpha_ft", values=metric
        )
        if len(control) < 2:
            continue
        target = seed_rows.groupby("alpha_ft")[metric].mean().reindex(control.columns)
        fit = fit_noise(control.index.to_numpy(float), control.to_numpy(float), target.to_numpy())
        deltas.append(fit)
    return deltas


def pooled(fits: list[NoiseFit]) -> tuple[np.ndarray, np.ndarray]:
    """(variances searched, the per-seed residuals averaged over seeds): Delta_eff is its
    minimum."""
    return fits[0].deltas, np.nanmean([f.objective for f in fits], axis=0)


def noise_section(df: pd.DataFrame, out: Path, write: TableWriter) -> list[str]:
    lines: list[str] = []
    exact = df[np.isinf(df["alpha_pre"])]
    bases = sorted(v for v in df["alpha_pre"].unique() if np.isfinite(v))
    if exact["noise"].nunique() < 2 or not bases:
        return ["Needs exact-base cells at two or more noise variances and pre-trained bases."]
    noises, fit_curves, grid = _mean_curves(exact, FIT_METRIC, "noise")
    _, check_curves, _ = _mean_curves(exact, CHECK_METRIC, "noise")
    table = Table(
        "theory_noise_fit",
        "Effective noise of each pre-trained base",
        [
            "base",
            "pre-training error",
            "||S0 - S*||² / ||S*||²",
            "Delta_eff from 1 - cos",
            "Delta_eff from excess error",
            "excess-error rms at Delta_eff",
            "excess-error rms at Delta = 0",
        ],
    )
    fits, palette = {}, colors(len(bases))
    fig, axes = panels(
        2,
        "Pre-training as effective noise: pre-trained bases (solid, band: seed range) and the "
        "exact base with the fitted label noise (dotted)",
    )
    band(axes[0], exact[exact["noise"] == 0], FIT_METRIC, "exact base, no noise", "black")
    band(axes[1], exact[exact["noise"] == 0], CHECK_METRIC, "exact base, no noise", "black")
    for color, alpha_pre in zip(palette, bases, strict=True):
        rows = df[(df["alpha_pre"] == alpha_pre) & (df["noise"] == 0)]
        if rows.empty:
            continue
        seed_fits = paired_fits(df, rows, FIT_METRIC)
        by_cos = [f.delta for f in seed_fits]
        by_error = [f.delta for f in paired_fits(df, rows, CHECK_METRIC)]
        deltas, objective = pooled(seed_fits)
        delta = float(deltas[int(np.nanargmin(objective))])
        fits[alpha_pre] = ((deltas, objective), delta, by_cos, by_error)
        check = rows.groupby("alpha_ft")[CHECK_METRIC].mean().reindex(grid).to_numpy(float)
        at_fit = control_curve(noises, check_curves, delta)
        at_zero = control_curve(noises, check_curves, 0.0)
        label = f"{alpha_pre_label(alpha_pre)}: Delta_eff={delta:.3g}"
        for ax, metric, curves in (
            (axes[0], FIT_METRIC, fit_curves),
            (axes[1], CHECK_METRIC, check_curves),
        ):
            band(ax, rows, metric, alpha_pre_label(alpha_pre), color)
            ax.plot(grid, control_curve(noises, curves, delta), ":", color=color, lw=2, label=label)
        table.add_row(
            [
                alpha_pre_label(alpha_pre),
                _pm(rows.groupby("seed")["pre_error"].first()),
                _pm(rows.groupby("seed")["pre_matrix_error"].first()),
                f"{delta:.3g} (seeds: {_pm(pd.Series(by_cos))})",
                _pm(pd.Series(by_error)),
                f"{np.sqrt(np.nanmean((at_fit - check) ** 2)):.3g}",
                f"{np.sqrt(np.nanmean((at_zero - check) ** 2)):.3g}",
            ]
        )
    finish(axes[0], FIT_METRIC)
    finish(axes[1], CHECK_METRIC, legend=True)
    _figure(
        "Collapse onto the exact base with label noise",
        out / "theory_noise_collapse.png",
        lines,
        fig,
    )
    _fit_figure(df, fits, noises, palette, out, lines)
    _control_figure(exact, noises, out, lines)
    table.notes.append(
        "Delta_eff: the label-noise variance whose exact-base curve over alpha_ft matches the "
        "base's, each seed against the control of the same seed (same teacher, inputs and test "
        "set; curves interpolated in sqrt(noise)): the minimum of the rms residual averaged over "
        "seeds, and in brackets the per-seed minima (mean ± sd). It is fitted "
        "twice, on 1 - cos(u, u*) and, independently, on the excess error (test error minus the "
        "error the teacher's own update leaves on this base): one effective noise explains both "
        "when the two agree. The rms columns compare the base's seed-mean excess-error curve "
        "with the control at the Delta_eff from 1 - cos (not fitted on it) and at Delta = 0."
    )
    lines += write(table, out)
    lines += _additivity(df, fits, write, out)
    return lines


def _fit_figure(df, fits, noises, palette, out, lines) -> None:
    fig, axes = panels(
        2,
        "The fit: residual against the noise variance (dot: Delta_eff), per-seed fits "
        "against the pre-training error",
    )
    for color, (alpha_pre, ((deltas, objective), delta, by_cos, by_error)) in zip(
        palette, fits.items(), strict=False
    ):
        axes[0].plot(deltas, objective, color=color, label=alpha_pre_label(alpha_pre))
        axes[0].plot([delta], [np.nanmin(objective)], "o", color=color)
        rows = df[(df["alpha_pre"] == alpha_pre) & (df["noise"] == 0)]
        pre = rows.groupby("seed")["pre_error"].first().to_numpy()[: len(by_cos)]
        axes[1].plot(pre, by_cos, "o", color=color, label=f"{alpha_pre_label(alpha_pre)}, 1 - cos")
        axes[1].plot(pre[: len(by_error)], by_error, "s", mfc="none", color=color,
                     label=f"{alpha_pre_label(alpha_pre)}, excess error")  # fmt: skip
    axes[0].set_xscale("symlog", linthresh=float(min(n for n in noises if n > 0)))
    axes[0].set_xlabel("label-noise variance Delta of the exact-base control")
    axes[0].set_ylabel("rms difference in 1 - cos (mean over seeds)")
    axes[1].set_xlabel("pre-training error of the base (one point per seed)")
    axes[1].set_ylabel("fitted Delta_eff")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _figure("Fitting the effective noise", out / "theory_noise_fit.png", lines, fig)


def _control_figure(exact, noises, out, lines) -> None:
    fig, axes = panels(2, "The control: exact base with label noise of variance Delta")
    for color, noise in zip(colors(len(noises)), noises, strict=True):
        rows = exact[exact["noise"] == noise]
        for ax, metric in zip(axes, (FIT_METRIC, CHECK_METRIC), strict=True):
            band(ax, rows, metric, f"Delta={noise:g}", color)
    finish(axes[0], FIT_METRIC)
    finish(axes[1], CHECK_METRIC, legend=True)
    _figure("Exact-base control curves", out / "theory_noise_control.png", lines, fig)


def _additivity(df, fits, write, out) -> list[str]:
    """Pre-trained bases with label noise added: is their Delta_eff the sum?"""
    rows = df[np.isfinite(df["alpha_pre"]) & (df["noise"] > 0)]
    if rows.empty:
        return []
    table = Table(
        "theory_noise_additivity",
        "Pre-trained base plus label noise: Delta_eff against Delta_eff(base) + noise",
        ["base", "added noise", "Delta_eff from 1 - cos", "Delta_eff(base) + noise"],
    )
    for (alpha_pre, noise), group in rows.groupby(["alpha_pre", "noise"]):
        paired = paired_fits(df, group, FIT_METRIC)
        deltas = [f.delta for f in paired]
        base = fits.get(alpha_pre)
        edges = sum(f.at_edge for f in paired)
        edge = f" ({edges} seed(s) at the largest measured variance)" if edges else ""
        table.add_row(
            [
                alpha_pre_label(alpha_pre),
                f"{noise:g}",
                f"{float(pooled(paired)[0][int(np.nanargmin(pooled(paired)[1]))]):.3g} "
                f"(seeds: {_pm(pd.Series(deltas))}){edge}",
                "-" if base is None else f"{base[1] + noise:.3g}",
            ]
        )
    table.notes.append("Fitted like the table above, on 1 - cos(u, u*).")
    return write(table, out)


# -- lora-theory-mismatch ----------------------------------------------------------------------
def _setting_label(row: pd.Series, varying: list[str]) -> str:
    parts = []
    for key in varying:
        value = row[key]
        parts.append(alpha_pre_label(value) if key == "alpha_pre" else f"{key}={value:g}")
    return ", ".join(parts) or "all cells"


def mismatch_section(df: pd.DataFrame, out: Path, write: TableWriter) -> list[str]:
    lines: list[str] = []
    varying = [k for k in ("alpha_pre", "ridge", "noise") if df[k].nunique() > 1]
    df = df.assign(setting=df.apply(_setting_label, axis=1, varying=varying))
    settings = list(dict.fromkeys(df.sort_values(varying)["setting"]))
    fig, axes = panels(
        2, "Test error and 1 - alignment against alpha_ft (line: seed mean, band: seed range)"
    )
    bases = sorted(df["alpha_pre"].unique())
    ridges = sorted(df["ridge"].unique())
    palette = dict(zip(bases, colors(len(bases)), strict=True))
    for name in settings:
        rows = df[df["setting"] == name]
        first = rows.iloc[0]
        color = palette[first["alpha_pre"]]
        dashed = ridges.index(first["ridge"]) > 0  # the stronger ridge(s) dashed
        band(axes[0], rows, "test_error", name, color, dashed)
        band(axes[1], rows, "misalignment", name, color, dashed)
    finish(axes[0], "test_error", symlog=True)
    finish(axes[1], "misalignment", legend=True, symlog=True)
    _figure("Test error against representation quality", out / "theory_mismatch.png", lines, fig)

    table = Table(
        "theory_mismatch",
        "Ranking of the settings by test error and by alignment, per alpha_ft",
        ["alpha_ft", "setting", "test error", "1 - cos(u, u*)", "rank by error", "rank by cos"],
    )
    disagree = []
    for alpha_ft, group in df.groupby("alpha_ft"):
        means = group.groupby("setting")[["test_error", "misalignment"]].mean()
        rank_err = means["test_error"].rank(method="min").astype(int)
        rank_cos = means["misalignment"].rank(method="min").astype(int)
        if rank_err.idxmin() != rank_cos.idxmin():
            disagree.append(
                f"alpha_ft={alpha_ft:g}: lowest error {rank_err.idxmin()}, "
                f"best alignment {rank_cos.idxmin()}"
            )
        for name in settings:
            if name not in means.index:
                continue
            rows = group[group["setting"] == name]
            differ = rank_err[name] != rank_cos[name]
            table.add_row(
                [
                    f"{alpha_ft:g}",
                    name,
                    _pm(rows["test_error"]),
                    _pm(rows["misalignment"]),
                    str(rank_err[name]),
                    str(rank_cos[name]),
                ],
                [False, False, False, False, differ, differ],
            )
    table.notes.append("Bold: the two metrics rank this setting differently at this alpha_ft.")
    table.notes.append(
        "Where the best setting differs: " + ("; ".join(disagree) if disagree else "nowhere")
    )
    lines += write(table, out)
    lines += write(_interval_table(df, settings), out)
    return lines


STALL = 0.05  # a relative change below 5% (or below 1e-6 absolute) counts as no change


def _trend(before: float, after: float) -> int:
    change = after - before
    if abs(change) < 1e-6 or abs(change) < STALL * abs(before):
        return 0
    return -1 if change < 0 else 1


def _interval_table(df: pd.DataFrame, settings: list[str]) -> Table:
    """Along each curve: alpha_ft steps where one metric improves and the other does not."""
    table = Table(
        "theory_mismatch_steps",
        "Steps in alpha_ft where one metric improves and the other stalls or worsens",
        ["setting", "alpha_ft step", "test error", "1 - cos(u, u*)"],
    )
    for name in settings:
        means = df[df["setting"] == name].groupby("alpha_ft")[["test_error", "misalignment"]].mean()
        points = list(means.iterrows())
        for (a0, r0), (a1, r1) in zip(points, points[1:], strict=False):
            err = _trend(r0["test_error"], r1["test_error"])
            mis = _trend(r0["misalignment"], r1["misalignment"])
            if err != mis and -1 in (err, mis):
                table.add_row(
                    [
                        name,
                        f"{a0:g} -> {a1:g}",
                        f"{r0['test_error']:.3g} -> {r1['test_error']:.3g}",
                        f"{r0['misalignment']:.3g} -> {r1['misalignment']:.3g}",
                    ]
                )
    table.notes.append(
        f"Seed means; a relative change under {STALL:.0%} counts as a stall. "
        + ("" if table.rows else "None: on every curve the two metrics move together.")
    )
    return table


# -- lora-theory-active ------------------------------------------------------------------------
def active_section(df: pd.DataFrame, out: Path, write: TableWriter) -> list[str]:
    lines: list[str] = []
    rules = [r for r in ("random", "gradient", "excitation") if r in set(df["selection"])]
    fig, axes = panels(
        2,
        "Active against random choice of the fine-tuning samples (line: seed "
        "mean, band: seed range)",
    )
    for color, rule in zip(("black", "tab:orange", "tab:blue"), rules, strict=False):
        rows = df[df["selection"] == rule]
        band(axes[0], rows, "test_error", rule, color, dashed=rule == "random")
        band(axes[1], rows, "misalignment", rule, color, dashed=rule == "random")
    finish(axes[0], "test_error", symlog=True)
    finish(axes[1], "misalignment", legend=True, symlog=True)
    _figure("Active fine-tuning", out / "theory_active.png", lines, fig)
    table = Table(
        "theory_active",
        "Selection rules against random selection (paired by seed: same pool, same teacher)",
        [
            "alpha_ft",
            "rule",
            "test error",
            "1 - cos(u, u*)",
            "error - random",
            "(1 - cos) - random",
        ],
    )
    keys = [
        "alpha_ft",
        "seed",
        *[k for k in ("alpha_pre", "noise", "ridge") if df[k].nunique() > 1],
    ]
    random = df[df["selection"] == "random"].set_index(keys)
    for alpha_ft, group in df.groupby("alpha_ft"):
        for rule in rules:
            rows = group[group["selection"] == rule]
            paired = rows.set_index(keys)[["test_error", "misalignment"]]
            diff = paired - random[["test_error", "misalignment"]].reindex(paired.index)
            better = rule != "random" and diff["test_error"].mean() < 0
            table.add_row(
                [
                    f"{alpha_ft:g}",
                    rule,
                    _pm(rows["test_error"]),
                    _pm(rows["misalignment"]),
                    "-" if rule == "random" else _pm(diff["test_error"]),
                    "-" if rule == "random" else _pm(diff["misalignment"]),
                ],
                [False, False, False, False, better, False],
            )
    table.notes.append(
        "Differences are means ± sd over seeds of the paired difference; bold: "
        "lower mean test error than random."
    )
    return lines + write(table, out)


SECTIONS = {
    "lora-theory-noise": noise_section,
    "lora-theory-mismatch": mismatch_section,
    "lora-theory-active": active_section,
}


def theory_section(records, check: str, out: Path, write: TableWriter) -> list[str]:
    """The markdown lines of the section ``check`` (plots and CSVs written into ``out``)."""
    df = theory_frame(records)
    lines = [ASSUMPTIONS, ""]
    if df.empty:
        return lines + ["No finished theory-sandbox cells in these runs: nothing to show.", ""]
    seeds = sorted(df["seed"].unique())
    d_values = ", ".join(str(v) for v in sorted(df["d"].unique()))
    lines += [f"{len(df)} cells, d = {d_values}, seeds {', '.join(map(str, seeds))}.", ""]
    return lines + SECTIONS[check](df, out, write) + [""]
