"""``bench report``: result records -> ``report.md`` + one CSV per table + PNG plots.

Python API (the CLI is a thin layer over it)::

    build_report(runs, out, baseline="lora", preset=None) -> Path      # out/report.md
    main_table_text(runs, baseline="lora", width=120) -> str          # terminal rendering
    main_table_renderables(runs, baseline="lora") -> list[rich.table.Table]

Report sections for ablation presets come from ``preset=NAME``, from a ``grid.yaml`` the runner
saved in a run folder, or from ``config["preset"]`` in the records.
"""

from __future__ import annotations

import datetime as _dt
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.ground.errors import BenchError
from harness.models.sandboxes import sandbox_of
from reports import plots
from reports.calibration import aa_table
from reports.contention import contention_notes
from reports.cores import core_table
from reports.flow import flow_markdown
from reports.pairing import untrained_methods
from reports.presets import list_presets, load_grid_file, load_preset
from reports.sampler import sampler_markdown
from reports.tables import (
    METHOD_ORDER,
    Layout,
    Table,
    costs_table,
    failures_table,
    focus_stats_table,
    footnotes,
    layout,
    main_tables,
    paired_tables,
)
from reports.theory import CHECKS as THEORY_CHECKS
from results.schema import Record
from results.store import (
    atomic_write_text,
    examples_frame,
    load_records,
    records_frame,
    write_parquet,
)

log = logging.getLogger(__name__)

REPORT_NAME = "report.md"
GRID_FILE = "grid.yaml"


@dataclass
class ReportData:
    records: list[Record]
    frame: pd.DataFrame
    examples: pd.DataFrame
    layout: Layout
    baseline: str
    notes: list[str] = field(default_factory=list)
    sections: list[dict[str, Any]] = field(default_factory=list)
    value_order: dict[str, list[Any]] = field(default_factory=dict)


def load_report_data(
    runs: list[Path] | list[str], baseline: str = "lora", preset: str | None = None
) -> ReportData:
    """Load and validate every record under ``runs``; raise :class:`BenchError` (one line) for
    an empty or foreign folder, a schema mismatch, or an unknown baseline or preset."""
    records = load_records([Path(r) for r in runs])
    grids = report_grids(records, preset)
    value_order: dict[str, list[Any]] = {}
    for g in grids:
        for axis, values in [("rank", g.get("ranks")), ("steps", g.get("steps"))] + list(
            g["set"].items()
        ):
            if values:
                value_order.setdefault(axis, list(values))
    frame = records_frame(records)
    methods = sorted(set(frame["method"]))
    notes = []
    if baseline not in methods:
        if baseline not in METHOD_ORDER:
            raise BenchError(
                f"baseline {baseline!r} is not a method of these runs "
                f"(methods: {', '.join(methods)})"
            )
        notes.append(
            f"The baseline method '{baseline}' is not in these runs: no ratios or paired "
            "differences to it."
        )
    return ReportData(
        records=records,
        frame=frame,
        examples=examples_frame(records),
        layout=layout(frame, baseline, value_order=value_order),
        baseline=baseline,
        notes=notes,
        sections=report_sections(grids),
        value_order=value_order,
    )


def main_table_renderables(runs: list[Path], baseline: str = "lora") -> list[Any]:
    """The main table(s) as rich tables, for the terminal (none for sandbox runs: their
    tables are in the report's preset section)."""
    data = load_report_data(runs, baseline)
    if all(sandbox_of(str(r.config["model"])) is not None for r in data.records):
        return []
    return [t.to_rich(narrow=True) for t in main_tables(data.frame, data.layout, terse=True)]


def seeds_disagree_line(report: Path) -> str | None:
    """One line for the terminal when some of the report's paired comparisons have seeds that
    disagree in sign (read from the ``stats_long.csv`` beside ``report``); None when none do."""
    path = Path(report).parent / "stats_long.csv"
    try:
        long = pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return None
    if "seeds_disagree" not in long.columns or long.empty:
        return None
    trained = ~long["method"].astype(str).str.split(" ").str[0].isin(untrained_methods())
    long = long[trained & long["paired"].astype(bool)]
    split = long[long["seeds_disagree"].astype(bool)]
    if split.empty:
        return None
    baseline = str(long["baseline"].iloc[0])
    return (
        f"the seeds disagree in sign on {len(split)} of {len(long)} comparisons with {baseline}: "
        "there this run does not tell the methods apart (the report's seed-by-seed table)"
    )


def main_table_text(runs: list[Path], baseline: str = "lora", width: int = 120) -> str:
    """The main table(s) rendered as plain text (no colour codes)."""
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False)
    for t in main_table_renderables(runs, baseline):
        console.print(t)
    return buf.getvalue()


# -- preset sections --------------------------------------------------------------------------
def _run_dirs(records: list[Record]) -> list[Path]:
    dirs = []
    for r in records:
        if r.source is not None:
            d = Path(r.source).parent.parent.parent
            if d not in dirs:
                dirs.append(d)
    return dirs


def report_grids(records: list[Record], preset: str | None) -> list[dict[str, Any]]:
    """The grids these records came from: ``preset``, ``<run>/grid.yaml``, ``config["preset"]``."""
    grids: list[dict[str, Any]] = []
    if preset is not None:
        grids.append(load_preset(preset))
    for d in _run_dirs(records):
        if (d / GRID_FILE).is_file():
            grids.append(load_grid_file(d / GRID_FILE))
    names = {r.config.get("preset") for r in records} - {None}
    for name in sorted(names, key=str):
        if name in list_presets():
            grids.append(load_preset(name))
    return grids


def report_sections(grids: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``report`` mappings of ``grids`` (deduplicated by section title)."""
    out, seen = [], set()
    for g in grids:
        rep = g.get("report") or {}
        title = rep.get("section")
        if rep and title not in seen:
            seen.add(title)
            out.append(rep)
    return out


def _section_markdown(data: ReportData, section: dict[str, Any], out: Path) -> list[str]:
    lines = [f"## {section.get('section') or 'Preset section'}", ""]
    if section.get("note"):
        lines += [str(section["note"]).strip(), ""]
    if section.get("check") == "aa":
        return lines + _table_markdown(aa_table(data.examples, data.layout.tasks), out)
    if section.get("check") == "flow":
        return lines + (flow_markdown(data.records, out, _table_markdown)[2:] or ["No L2D scores."])
    if section.get("check") in THEORY_CHECKS:
        from reports.theory.sections import theory_section

        return lines + theory_section(data.records, section["check"], out, _table_markdown)
    axis = section.get("focus_axis")
    if axis is None:
        lines += ["The main table above is this section's result.", ""]
        return lines
    if axis not in data.frame.columns or data.frame[axis].dropna().empty:
        lines += [f"The axis `{axis}` does not vary in these records: nothing to show.", ""]
        return lines
    lay = layout(data.frame, data.baseline, focus_axis=axis, value_order=data.value_order)
    main = data.layout
    if (lay.split_axes, lay.row_axes) == (main.split_axes, main.row_axes):
        lines += [f"The main table above has one row per `{axis}` value.", ""]
        tables = []
    else:
        tables = main_tables(data.frame, lay, key_prefix="focus_" + axis.replace(".", "_"))
    reference = section.get("reference")
    if reference is not None:
        tables.append(focus_stats_table(data.frame, data.examples, lay, axis, reference))
    for t in tables:
        lines += _table_markdown(t, out)
    return lines


# -- markdown ---------------------------------------------------------------------------------
def _table_markdown(t: Table, out: Path, level: str = "###") -> list[str]:
    atomic_write_text(out / f"{t.key}.csv", t.to_csv())
    lines = [f"{level} {t.title}", "", t.to_markdown(), ""]
    lines += [f"_{n}_" for n in t.notes]
    lines.append(f"\n[CSV]({t.key}.csv)\n")
    return lines


# the packages whose version changes what a cell computes (not only how it is reported)
NUMERIC_PACKAGES = ("torch", "transformers", "peft")


def _environment_lines(records: list[Record]) -> list[str]:
    commits = sorted(
        {
            f"{r.environment.git_commit or 'unknown'}{' (dirty)' if r.environment.git_dirty else ''}"
            for r in records
        }
    )
    devices = sorted({str(r.environment.device_name) for r in records if r.environment.device_name})
    threads = sorted({str(r.environment.threads) for r in records if r.environment.threads})
    # the CPU's kernels decide the rounding only where the cell ran on the CPU
    kernels = sorted(
        {
            str(r.environment.cpu_kernels)
            for r in records
            if r.environment.cpu_kernels and str(r.environment.device_name).startswith("cpu")
        }
    )
    pythons = sorted({str(r.environment.python) for r in records if r.environment.python})
    packages: dict[str, set[str]] = {}
    for r in records:
        for k, v in r.environment.packages.items():
            packages.setdefault(k, set()).add(str(v))
    lines = [f"- git commit: {', '.join(commits)}"]
    if devices:
        lines.append(f"- devices: {', '.join(devices)}")
    if threads:
        lines.append(f"- threads: {', '.join(threads)}")
    if kernels:
        lines.append(f"- CPU kernels (cells run on the CPU): {', '.join(kernels)}")
    if pythons:
        lines.append(f"- python: {', '.join(pythons)}")
    if packages:
        pk = ", ".join(f"{k} {'/'.join(sorted(v))}" for k, v in sorted(packages.items()))
        lines.append(f"- packages: {pk}")
    if len(commits) > 1:
        lines.append("- **warning**: the records come from more than one code version.")
    numeric = [k for k in NUMERIC_PACKAGES if len(packages.get(k, ())) > 1]
    if numeric:
        lines.append(
            f"- **warning**: the records come from more than one version of {', '.join(numeric)}, "
            "which compute the model: the same cell can score differently under each."
        )
    if len(kernels) > 1:
        lines.append(
            "- **warning**: the records were trained under more than one CPU kernel set; each "
            "rounds differently, so the same cell can score differently under each."
        )
    return lines + _base_lines(records)


def _base_lines(records: list[Record]) -> list[str]:
    """The base weights each model name stood for (``config.base.weights``, recorded since the
    base was; older records have none) and a warning where one name stood for several: a tiny
    base pretrained again, or another revision of a hub model, compared as if one."""
    weights: dict[str, dict[str, int]] = {}
    for r in records:
        digest = (r.config.get("base") or {}).get("weights")
        if digest:
            seen = weights.setdefault(str(r.config.get("model")), {})
            seen[digest] = seen.get(digest, 0) + 1
    if not weights:
        return []
    shown = "; ".join(
        f"{model}: " + ", ".join(f"{d} ({n} cells)" for d, n in sorted(seen.items()))
        for model, seen in sorted(weights.items())
    )
    lines = [f"- base weights (digest of config, weight and tokenizer files): {shown}"]
    mixed = sorted(model for model, seen in weights.items() if len(seen) > 1)
    if mixed:
        lines.append(
            f"- **warning**: {', '.join(mixed)} stands for more than one base here; comparisons "
            "across those records compare different models."
        )
    return lines


def _plots_markdown(data: ReportData, out: Path) -> list[str]:
    records, frame, lay, baseline = data.records, data.frame, data.layout, data.baseline
    lines: list[str] = []
    plot_notes: list[str] = []
    figs: list[tuple[str, Path]] = []
    paths, notes = plots.plot_noise_loss(records, lay, out)
    figs += [("Validation loss per noise bin (bands: range over seeds)", paths[0])] if paths else []
    figs += [(f"Difference to {baseline} per noise bin", paths[1])] if len(paths) > 1 else []
    plot_notes += notes
    if paths:
        plot_notes.append(
            "Validation loss: every validation example at every bin's mid noise level, with the "
            "same seeded masks for every method (and for the base model, which is not trained)."
        )
    p = plots.plot_steps(frame, lay, out)
    if p is not None:
        figs.append(("Score against sampling steps", p))
    p = plots.plot_pareto(frame, lay, out)
    if p is not None:
        figs.append(("Average score against trainable parameters", p))
    paths, notes = plots.plot_nara(records, lay, out)
    names = {"nara_core.png": "NaRA core: ||C(t) - I||_F and singular values of C(t)"}
    names["nara_update_norms.png"] = "NaRA update: ||B C(t) A||_F per layer type"
    figs += [(names.get(p.name, p.stem), p) for p in paths]
    plot_notes += notes
    for title, path in figs:
        lines += [f"### {title}", "", f"![{title}]({path.name})", ""]
    lines += [f"- {n}" for n in plot_notes]
    lines.append("")

    return lines


def build_report(
    runs: list[Path],
    out: Path,
    baseline: str = "lora",
    preset: str | None = None,
    make_plots: bool = True,
) -> Path:
    """Write ``out/report.md``, a CSV per table, ``results.parquet`` and (unless ``make_plots``
    is False) the PNG plots; return the markdown path. Raise :class:`BenchError` for an empty,
    record-less or foreign folder, a schema mismatch or an unknown baseline."""
    data = load_report_data(runs, baseline, preset)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if all(sandbox_of(str(r.config["model"])) is not None for r in data.records):
        return _sandbox_report(data, out)
    records, frame, lay = data.records, data.frame, data.layout
    status = frame.drop_duplicates("cell_id")["status"].value_counts().to_dict()

    lines = ["# Benchmark report", ""]
    lines.append(
        f"Runs: {', '.join(f'`{d}`' for d in _run_dirs(records)) or ', '.join(map(str, runs))}. "
        f"Cells: {status.get('done', 0)} done, {status.get('failed', 0)} failed, "
        f"{status.get('running', 0)} running. Baseline: `{baseline}`. Seeds: "
        f"{', '.join(map(str, lay.seeds))}. Generated "
        f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}."
    )
    lines.append("")
    lines += [f"> {n}" for n in data.notes]
    if data.notes:
        lines.append("")

    lines += ["## Main results", ""]
    for t in main_tables(frame, lay):
        lines += _table_markdown(t, out)
    lines.append("See [Notes](#notes) for data provenance, limits and sampler settings.\n")

    for section in data.sections:
        lines += _section_markdown(data, section, out)

    lines += sampler_markdown(records, data.examples, out, _table_markdown)
    if not any(s.get("check") == "flow" for s in data.sections):
        lines += flow_markdown(records, out, _table_markdown)

    lines += ["## Costs", ""]
    costs = costs_table(frame, lay)
    costs.notes += contention_notes(records)
    lines += _table_markdown(costs, out)

    lines += ["## Statistics", ""]
    s_tables, by_seed, s_long = paired_tables(frame, data.examples, lay)
    for t in [*s_tables, *by_seed]:
        lines += _table_markdown(t, out)
    atomic_write_text(out / "stats_long.csv", s_long.to_csv(index=False))

    cores = core_table(records, frame, data.examples, lay)
    if cores is not None:
        lines += ["## Core visibility", ""]
        lines += _table_markdown(cores, out)

    lines += ["## Noise-level analysis", ""]
    if make_plots:
        lines += _plots_markdown(data, out)
    else:
        lines += ["Plots were not drawn (make_plots=False).", ""]

    fails = failures_table(records)
    if fails.rows:
        lines += ["## Failed and unfinished cells", ""]
        lines += _table_markdown(fails, out, level="###")

    lines += ["## Notes", ""]
    for i, n in enumerate(footnotes(records), 1):
        lines.append(f"{i}. {n}")
    lines += ["", "## Environment", ""]
    lines += _environment_lines(records)
    lines.append("")

    write_parquet(frame, out / "results.parquet")
    md = out / REPORT_NAME
    atomic_write_text(md, "\n".join(lines))
    log.info("report written to %s", md)
    return md


def _sandbox_report(data: ReportData, out: Path) -> Path:
    """The report of runs whose cells are all sandbox cells (harness/models/sandboxes.py): their preset
    sections, failures and environment. The dLLM tables (accuracy higher-is-better, paired
    per-example statistics, noise bins, sampler costs) do not apply to them."""
    records = data.records
    status = data.frame.drop_duplicates("cell_id")["status"].value_counts().to_dict()
    lines = ["# Benchmark report", ""]
    lines.append(
        f"Runs: {', '.join(f'`{d}`' for d in _run_dirs(records))}. Cells: "
        f"{status.get('done', 0)} done, {status.get('failed', 0)} failed, "
        f"{status.get('running', 0)} running, all of the theory sandbox (--model "
        f"{', '.join(sorted({str(r.config['model']) for r in records}))}). Generated "
        f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}."
    )
    lines.append("")
    for section in data.sections:
        lines += _section_markdown(data, section, out)
    if not data.sections:
        lines += ["These runs name no report section (a theory preset's report.check).", ""]
    fails = failures_table(records)
    if fails.rows:
        lines += ["## Failed and unfinished cells", ""]
        lines += _table_markdown(fails, out, level="###")
    lines += ["## Environment", ""]
    lines += _environment_lines(records)
    lines.append("")
    write_parquet(data.frame, out / "results.parquet")
    md = out / REPORT_NAME
    atomic_write_text(md, "\n".join(lines))
    log.info("report written to %s", md)
    return md
