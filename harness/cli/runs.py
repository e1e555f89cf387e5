"""`bench run` (a grid: preset or grid file, then command-line options on top) and `bench report`
(the markdown report of run folders, the last run by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.app import app, console
from harness.cli.dry_run import _print_plan, _print_worker_plan
from harness.ground.errors import BenchError

RUNS_ROOT = Path("runs")
LAST_RUN = RUNS_ROOT / "LAST"


def _grid_spec(
    methods, tasks, model, seeds, ranks, sets, steps, config, preset, limit
) -> tuple[dict, str]:
    """The grid as a mapping: preset or grid file first, then command-line options on top."""
    from harness.config.cell import is_tiny
    from harness.run.grid import parse_set

    spec: dict = {}
    name = "demo"
    if preset and config:
        raise BenchError("give either --preset or --config, not both")
    plain = methods is tasks is model is seeds is ranks is steps is limit is sets is None
    if plain and not preset and not config:
        preset = "demo"  # `bench run` alone (`make demo`) runs the demo preset
    if preset:
        from reports.presets import load_preset

        spec = dict(load_preset(preset))
        name = preset
    elif config:
        from reports.presets import load_grid_file

        spec = dict(load_grid_file(config))
        name = config.stem
    if preset or config:
        from reports.presets import for_model

        spec = for_model(spec, model)
        from harness.models.sandboxes import sandbox_of

        real_model = not is_tiny(spec["model"]) and sandbox_of(spec["model"]) is None
        if preset and real_model:  # a real model's run never mixes with tiny's
            name = f"{preset}_{Path(spec['model']).name}"
    spec.pop("name", None)
    spec.pop("description", None)
    given = {
        "methods": methods,
        "tasks": tasks,
        "model": model,
        "seeds": seeds,
        "ranks": ranks,
        "steps": steps,
        "limit": limit,
    }
    for key, value in given.items():
        if value is not None:
            spec[key] = value
    if sets:
        spec["set"] = {
            **(spec.get("set") or {}),
            **{k: list(v) for k, v in parse_set(sets).items()},
        }
    if not preset and not config and (methods or tasks or sets or model not in (None, "tiny")):
        import hashlib
        import json

        digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
        readable = "_".join(
            str(spec.get(k, "")).replace(",", "-") for k in ("methods", "tasks") if spec.get(k)
        )
        name = f"{readable[:60] or 'grid'}_{digest[:8]}"
    return spec, name


@app.command()
def run(
    methods: Annotated[
        str | None, typer.Option(help="Comma list: lora,dora,static_core,nara,binned_lora.")
    ] = None,
    tasks: Annotated[
        str | None, typer.Option(help="Comma list of tasks or groups (bench list tasks).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="tiny, an alias (bench list models) or a folder.")
    ] = None,
    seeds: Annotated[str | None, typer.Option(help="Comma list, e.g. 0,1,2.")] = None,
    ranks: Annotated[str | None, typer.Option(help="Comma list, e.g. 8,32.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="SECTION.FIELD=V1[,V2]; sections: train, eval, method, a method name, "
            "a task with settings (attention_lora).",
        ),
    ] = None,
    steps: Annotated[
        str | None, typer.Option(help="Sampling steps to evaluate, e.g. 32,64,128.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Grid YAML file.")] = None,
    preset: Annotated[
        str | None, typer.Option(help="A paper-ablation preset (bench list presets).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/NAME).")] = None,
    limit: Annotated[int | None, typer.Option(help="Score at most N examples per task.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the cells and their cost; run nothing.")
    ] = False,
    devices: Annotated[
        str | None, typer.Option(help="auto, cpu, cpu-cores, cpu,cpu or cuda:0,cuda:1,...")
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(help="Where cells run: local (this machine, default) or ray (a Ray cluster)."),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="With --executor ray: auto or HOST:PORT of a running cluster (default: start a "
            "local Ray on 127.0.0.1).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="With --executor ray on CPUs: N workers sharing the cores."),
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Run failed cells again.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Live progress view.")] = True,
    device_kind: Annotated[
        str | None,
        typer.Option(
            "--device-kind",
            help="GPU the dry run costs real models on: A100-40GB, A100-80GB, H100, H200, L40S, "
            "CPU (default: the visible GPU, else A100-80GB).",
        ),
    ] = None,
) -> None:
    """Run the grid methods x tasks x seeds x ranks x settings (resumable; failures isolated)."""
    from harness.run.cell import CellRequest
    from harness.run.executors import choose_executor
    from harness.run.grid import make_grid, sampling_steps, sampling_variants, unused_settings
    from harness.run.live import live_view
    from harness.run.runner import run_grid

    if limit is not None and limit <= 0:
        raise BenchError("--limit must be positive")
    spec, name = _grid_spec(methods, tasks, model, seeds, ranks, set_, steps, config, preset, limit)
    placed = {k: spec.pop(k, None) for k in ("executor", "ray_address", "workers")}
    grid = make_grid(spec)
    cells = grid.cells()
    for key in unused_settings(grid):
        console.print(f"[yellow]note[/yellow] --set {key} applies to no method of this grid")
    requests = [
        CellRequest(cell, sampling_steps(grid, cell), sampling_variants(grid, cell))
        for cell in cells
    ]
    out = out or RUNS_ROOT / name
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out} is a file; a run needs a folder")
    # --devices, else the preset's for the tiny model (the demo: cpu-cores, a worker per core)
    from harness.config.cell import is_tiny

    executor_name = executor or placed["executor"] or "local"
    local_tiny = is_tiny(grid.model) and executor_name == "local"
    preset_devices = spec.get("devices") if local_tiny else None
    executor = choose_executor(  # validates the options even for a dry run
        executor_name,
        devices=devices or preset_devices,
        ray_address=ray_address or placed["ray_address"],
        workers=workers if workers is not None else placed["workers"],
    )
    if dry_run:
        _print_plan(requests, out, device_kind, workers=max(1, len(executor.workers())))
        _print_worker_plan(requests, executor, device_kind)
        return
    from harness.run.preflight import check_data, check_settings

    check_data(cells)  # one line before any training if a training or scored set is missing
    check_settings(requests)  # ... or if a setting would be refused only after training
    from harness.processes.masked.pretrain import ensure_base_for_run

    ensure_base_for_run(grid.model)  # pretrain here on every core, before any worker starts
    spec_saved = {**grid.to_spec(), "name": name, "report": spec.get("report") or {}}
    if preset:
        spec_saved["preset"] = preset
    interactive = progress and console.is_terminal
    with live_view(len(requests), console, enabled=interactive) as view:
        summary = run_grid(
            requests,
            out,
            spec_saved,
            executor,
            retry_failed,
            monitor_factory=lambda n: (view.expecting(n), view),
        )
    RUNS_ROOT.mkdir(exist_ok=True)
    LAST_RUN.write_text(str(out) + "\n")
    console.print(
        f"run [bold]{out}[/bold]: {summary.done} done, {len(summary.failed)} failed, "
        f"{summary.skipped} already finished (of {summary.total}) in {summary.wall_time_s:.0f} s"
    )
    for line in summary.held:
        console.print(f"[yellow]left to another run on this folder[/yellow] {line}")
    for line in summary.failed:
        console.print(f"[red]failed[/red] {line.splitlines()[0]}")
    if summary.failed:
        console.print("rerun with --retry-failed to try the failed cells again")
        raise typer.Exit(1)


@app.command()
def report(
    runs: Annotated[
        list[Path] | None, typer.Option(help="Run folders (default: the last run).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default reports/out/RUN).")
    ] = None,
    baseline: Annotated[str, typer.Option(help="Method the others are compared with.")] = "lora",
    preset: Annotated[str | None, typer.Option(help="Add this preset's report section.")] = None,
) -> None:
    """Write the markdown report (tables, statistics, plots) and print the main table."""
    from reports.build import build_report, main_table_renderables, seeds_disagree_line

    if not runs:
        if not LAST_RUN.is_file():
            raise BenchError(
                "no --runs given and no previous run found (runs/LAST); run `bench run` first"
            )
        runs = [Path(LAST_RUN.read_text().strip())]
    out = out or Path("reports") / "out" / runs[0].name
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out} is a file; the report needs a folder")
    path = build_report(list(runs), out, baseline=baseline, preset=preset)
    for table in main_table_renderables(list(runs), baseline=baseline):
        console.print(table)
    split = seeds_disagree_line(path)
    if split:
        console.print(split)
    console.print(f"report: [bold]{path}[/bold]")
