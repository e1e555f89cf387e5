"""`bench`: a thin typer layer over the Python API (every command is a function you can import)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from harness.errors import BenchError

app = typer.Typer(
    help="PEFT benchmark and ablation harness for diffusion LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
list_app = typer.Typer(
    help="List what the harness knows: methods, tasks, models.", no_args_is_help=True
)
app.add_typer(list_app, name="list")
console = Console()


@app.command()
def pretrain(
    seed: Annotated[int, typer.Option(help="Seed for data, init and masking.")] = 0,
    steps: Annotated[
        int | None, typer.Option(help="Training steps (default: the cached config's).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Pretrain again even if a cached base exists.")
    ] = False,
) -> None:
    """Pretrain the embedded tiny dLLM on the synthetic corpus and cache it (BENCH_CACHE)."""
    import dataclasses
    import json

    from harness.pretrain import PretrainConfig, ensure_tiny_base, tiny_base_dir

    config = PretrainConfig(seed=seed)
    if steps is not None:
        if steps <= 0:
            raise BenchError("--steps must be positive")
        config = dataclasses.replace(config, steps=steps)
    folder = tiny_base_dir(config)
    if force and folder.exists():
        import shutil

        shutil.rmtree(folder)
    folder = ensure_tiny_base(config)
    report = json.loads((folder / "pretrain_report.json").read_text())
    console.print(f"tiny base: [bold]{folder}[/bold]")
    console.print(f"pretraining time {report['train_time_s']} s, params {report['params']:,}")
    for name, acc in report["accuracy"].items():
        console.print(f"  {name}: accuracy {acc:.2f} (chance {report['chance'][name]:.2f})")


@app.command()
def sample(
    prompt: Annotated[str, typer.Argument(help="Prompt text (already formatted).")],
    model: Annotated[str, typer.Option(help="Model alias or folder.")] = "tiny",
    adapter: Annotated[Path | None, typer.Option(help="Adapter folder of a bench cell.")] = None,
    gen_length: int = 32,
    steps: int = 32,
    block_length: int = 32,
    temperature: float = 0.0,
    cache: Annotated[str, typer.Option(help="KV cache: none, prefix, dual.")] = "none",
    parallel: Annotated[
        str, typer.Option(help="Commit rule: none, threshold:X (0<X<=1), factor:X (X>0).")
    ] = "none",
    cache_refresh: Annotated[
        str, typer.Option(help="Cache refresh: block, step-level-change:X.")
    ] = "block",
    device: str = "auto",
) -> None:
    """Generate one response with the batched diffusion sampler (a quick look at a model)."""
    from harness.models.loader import load_model
    from harness.sampling import SamplerConfig, SamplingStats, generate

    config = SamplerConfig(
        gen_length,
        steps,
        block_length,
        temperature,
        cache=cache,
        parallel=parallel,
        cache_refresh=cache_refresh,
    )
    dlm = load_model(model, device)
    if adapter is not None:
        from methods.registry import load_adapter

        load_adapter(dlm, adapter)
    stats = SamplingStats()
    prompt_ids = dlm.tokenizer.encode_prompt(dlm.tokenizer.chat(prompt))
    if dlm.objective == "autoregressive":  # greedy next-token decoding (L2D: default flow)
        from harness.causal.decode import greedy_generate
        from harness.causal.evaluate import flow_settings
        from harness.config import EvalConfig

        settings = flow_settings(dlm, EvalConfig(), 0)
        out = greedy_generate(dlm, [prompt_ids], gen_length, settings, stats)[0]
        console.print(dlm.tokenizer.decode(out))
        console.print(f"[dim]greedy: {stats.tokens} tokens, {stats.tokens_per_s or 0:.1f}/s[/dim]")
        return
    out = generate(dlm, [prompt_ids], config, stats=stats)[0]
    console.print(dlm.tokenizer.decode(out))
    console.print(
        f"[dim]{config.label} (cache used: {stats.cache_used}): {stats.forwards} forwards for "
        f"{stats.tokens} tokens, {stats.tokens_per_s or 0:.1f} tokens/s[/dim]"
    )


RUNS_ROOT = Path("runs")
LAST_RUN = RUNS_ROOT / "LAST"


def _grid_spec(
    methods, tasks, model, seeds, ranks, sets, steps, config, preset, limit
) -> tuple[dict, str]:
    """The grid as a mapping: preset or grid file first, then command-line options on top."""
    from harness.config import is_tiny
    from harness.grid import parse_set

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
        from harness.sandboxes import sandbox_of

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
    from harness.cell import CellRequest
    from harness.executors import choose_executor
    from harness.grid import make_grid, sampling_steps, sampling_variants
    from harness.live import live_view
    from harness.runner import run_grid

    if limit is not None and limit <= 0:
        raise BenchError("--limit must be positive")
    spec, name = _grid_spec(methods, tasks, model, seeds, ranks, set_, steps, config, preset, limit)
    placed = {k: spec.pop(k, None) for k in ("executor", "ray_address", "workers")}
    grid = make_grid(spec)
    cells = grid.cells()
    requests = [
        CellRequest(cell, sampling_steps(grid, cell), sampling_variants(grid, cell))
        for cell in cells
    ]
    out = out or RUNS_ROOT / name
    # --devices, else the preset's for the tiny model (the demo: cpu-cores, a worker per core)
    from harness.config import is_tiny

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
    from harness.preflight import check_data

    check_data(cells)  # one line before any training if a training or scored set is missing
    from harness.pretrain import ensure_base_for_run

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
            monitor_factory=lambda n: (view, view),
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


def _print_plan(requests, out: Path, device_kind: str | None = None, workers: int = 1) -> None:
    from rich.table import Table

    from harness.config import is_tiny
    from harness.costs import planning_device
    from harness.plan import estimate, grid_seconds, param_labels, token_labels
    from harness.preflight import missing_data
    from harness.sandboxes import sandbox_of

    real = any(not is_tiny(r.cell.model) and sandbox_of(r.cell.model) is None for r in requests)
    device = planning_device(device_kind) if real else None
    table = Table(
        "cell", "method", "trains on", "evaluates", "seed", "rank", "axes", "updates",
        "eval steps", "params", "trainable", "train tok", "eval tok", "est. time",
    )  # fmt: skip
    if real:
        table.add_column("peak mem (no GC / GC)")
        table.add_column("fits")
    seconds, hours, problems, notes = 0.0, 0.0, [], []
    for request in requests:
        cell = request.cell
        cost = estimate(request, device)
        if cost.real is not None:
            hours += cost.real.gpu_hours or 0.0
        else:
            seconds += cost.seconds or 0.0
        if cost.problem:
            problems.append(cost.problem)
        if cost.note and cost.note not in notes:
            notes.append(cost.note)
        row = [
            cell.cell_id,
            cell.method,
            f"{cell.task} ({cell.train.data})",
            ",".join(cell.evaluated_tasks),
            str(cell.seed),
            "-" if cell.rank is None else str(cell.rank),
            ", ".join(f"{k}={v}" for k, v in cell.axes.items()) or "-",
            "?" if cost.updates is None else str(cost.updates),
            ",".join(map(str, request.steps)),
            *param_labels(cost),
            *token_labels(cost),
            cost.label,
        ]
        if real:
            row += [cost.memory_label, cost.fits_label]
        table.add_row(*row)
    console.print(table)
    if device is not None:
        console.print(
            f"real models costed on {device.label}: {hours:.1f} GPU-hours in all (FLOPs over "
            "an assumed utilisation, +-50%; see harness/costs/estimate.py)"
        )
        for problem in problems:
            console.print(f"[red]will not fit:[/red] {problem}", soft_wrap=True)
        for note in notes:
            console.print(note, highlight=False, soft_wrap=True)
    on = f" on {workers} CPU workers" if workers > 1 and not real else ""
    minutes = grid_seconds(seconds, workers if not real else 1) / 60
    total = f"estimated {minutes:.1f} min{on}" if seconds or not real else f"{hours:.1f} GPU-h"
    console.print(f"{len(requests)} cells into {out}; {total} (nothing was run)")
    notes = sorted({r.cell.train_data_note for r in requests if r.cell.train_data_note})
    for line in [*notes, *missing_data([r.cell for r in requests])]:
        console.print(line, highlight=False, soft_wrap=True)
    for line in _power_lines([r.cell for r in requests]):
        console.print(line)


def _print_worker_plan(requests, executor, device_kind: str | None = None) -> None:
    """The dry run's plan per worker (harness/executors/plan.py)."""
    from rich.table import Table

    from harness.executors.plan import plan_workers

    plan = plan_workers(requests, executor, device_kind)
    table = Table("worker", "node", "device", "cells", "base loads", "est. time", "first cells")
    for row in plan.rows:
        table.add_row(
            row.worker, row.node, row.device, str(len(row.cells)), str(row.loads), row.time_label,
            ", ".join(row.cells[:3]) + (" ..." if len(row.cells) > 3 else ""),
        )  # fmt: skip
    console.print(f"plan per worker ({executor.name} executor; {plan.note}):")
    console.print(table)


def _power_lines(cells) -> list[str]:
    """Per evaluated task, the minimum detectable paired effect the grid can see
    (reports/power.py)."""
    from methods.registry import get_method
    from reports.power import planning_line
    from tasks.registry import get_task

    seeds: dict[str, set[int]] = {}
    sizes: dict[str, int | None] = {}
    for cell in cells:
        for task in cell.evaluated_tasks:
            if get_method(cell.method).trains:
                seeds.setdefault(task, set()).add(cell.seed)
            known = [n for n in (cell.eval.limit, get_task(task).test_size) if n]
            sizes.setdefault(task, min(known) if known else None)
    lines = []
    for task, task_seeds in seeds.items():
        if sizes[task] is None:
            lines.append(f"{task}: the MDE depends on the test set size: see the report")
        else:
            lines.append(planning_line(task, sizes[task], len(task_seeds)))
    return lines


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
    from reports.build import build_report, main_table_renderables

    if not runs:
        if not LAST_RUN.is_file():
            raise BenchError(
                "no --runs given and no previous run found (runs/LAST); run `bench run` first"
            )
        runs = [Path(LAST_RUN.read_text().strip())]
    out = out or Path("reports") / "out" / runs[0].name
    path = build_report(list(runs), out, baseline=baseline, preset=preset)
    for table in main_table_renderables(list(runs), baseline=baseline):
        console.print(table)
    console.print(f"report: [bold]{path}[/bold]")


@list_app.command("methods")
def list_methods_cmd() -> None:
    """Every method with its config fields and defaults."""
    from rich.table import Table

    from methods.registry import list_methods

    for row in list_methods():
        table = Table(
            "field",
            "default",
            "meaning",
            title=f"{row.name}: {row.description}" + (" (noise-aware)" if row.noise_aware else ""),
            title_justify="left",
        )
        for f in row.fields:
            table.add_row(f.name, repr(f.default), f.help)
        if not row.fields:
            table.add_row("-", "-", "no settings")
        console.print(table)


@list_app.command("tasks")
def list_tasks_cmd() -> None:
    """Every task with suite, split sizes, protocols and data availability here."""
    from tasks.cli import list_tasks

    console.print(list_tasks())


@list_app.command("presets")
def list_presets_cmd() -> None:
    """Paper-ablation presets for `bench run --preset NAME`."""
    from reports.presets import list_presets, load_preset

    for name in list_presets():
        console.print(f"[bold]{name}[/bold]: {load_preset(name).get('description', '')}")


@app.command()
def score(
    task: Annotated[str, typer.Option(help="Task name (bench list tasks).")],
    predictions: Annotated[Path, typer.Option(help="JSONL: one {id, output} object per line.")],
    protocol: Annotated[
        str | None, typer.Option(help="gen or loglik (default: the task's).")
    ] = None,
    show: Annotated[int, typer.Option(help="Per-example rows to print.")] = 20,
) -> None:
    """Score outputs produced elsewhere with exactly the runner's scorer."""
    from rich.table import Table

    from tasks.cli import score_predictions

    metrics, rows = score_predictions(task, predictions, protocol)
    table = Table("id", "extracted", "correct")
    for row in rows[:show]:
        table.add_row(str(row.get("id")), str(row.get("extracted")), str(row.get("correct")))
    if rows:
        console.print(table)
    for key, value in metrics.items():
        console.print(
            f"{key}: [bold]{value:.4f}[/bold]" if isinstance(value, float) else f"{key}: {value}"
        )


@app.command("eval")
def eval_cmd(
    lm_eval_tasks: Annotated[str, typer.Option(help="Comma list of lm-eval task names.")],
    model: Annotated[str | None, typer.Option(help="Base model (default: the cell's).")] = None,
    adapter: Annotated[
        Path | None, typer.Option(help="A cell folder or an adapter folder.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Examples per task.")] = None,
    include_path: Annotated[Path | None, typer.Option(help="Folder of extra task YAMLs.")] = None,
    model_arg: Annotated[
        list[str] | None, typer.Option("--model-arg", help="KEY=VALUE, e.g. mc_num=64, steps=128.")
    ] = None,
    chat_template: Annotated[
        bool | None, typer.Option(help="Apply the chat template (default: if any).")
    ] = None,
    allow_code_execution: Annotated[
        bool, typer.Option("--allow-code-execution", help="Let code tasks run generated code.")
    ] = False,
    device: str = "auto",
) -> None:
    """Score a base model or a cell's adapter on lm-evaluation-harness tasks."""
    from harness.grid import parse_values
    from harness.lmeval import run_lm_eval

    if model is None and adapter is None:
        raise BenchError("give --model, --adapter (a cell folder), or both")
    args = {}
    for item in model_arg or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BenchError(f"malformed --model-arg {item!r}: expected KEY=VALUE")
        args[key.strip()] = parse_values(value)[0]
    tasks = [t.strip() for t in lm_eval_tasks.split(",") if t.strip()]
    if not tasks:
        raise BenchError("--lm-eval-tasks is empty")
    results = run_lm_eval(
        model,
        adapter,
        tasks,
        limit,
        include_path,
        device,
        args,
        apply_chat_template=chat_template,
        confirm_run_unsafe_code=allow_code_execution,
    )
    for task, metrics in (results.get("results") or {}).items():
        shown = ", ".join(
            f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float) and "stderr" not in k
        )
        console.print(f"[bold]{task}[/bold]: {shown}")
    if results.get("bench_record"):
        console.print(f"scores stored in {results['bench_record']}")


@app.command("export")
def export_cmd(
    adapter: Annotated[Path, typer.Option(help="A cell folder or an adapter folder.")],
    out: Annotated[Path, typer.Option(help="Folder to write (must not exist, or be empty).")],
    level: Annotated[
        float | None,
        typer.Option(help="NaRA and binned_lora (required): the noise level t to export at."),
    ] = None,
) -> None:
    """Write a plain peft LoRA folder (stock peft loads it) from a bench adapter."""
    from harness.adapter_paths import resolve_adapter
    from methods.export import export_adapter

    adapter_dir, _ = resolve_adapter(adapter)
    done = export_adapter(adapter_dir, out, level)
    at = f" at noise level {done.level}" if done.level is not None else ""
    if done.bin is not None:
        at += f" (bin {done.bin} of {done.bins})"
    console.print(
        f"{done.method} adapter{at} -> plain peft folder [bold]{done.folder}[/bold] "
        f"({done.layers} layers); load it with PeftModel.from_pretrained(base, folder)"
    )


@list_app.command("models")
def list_models() -> None:
    """Model aliases and where each loads from."""
    from rich.table import Table

    from harness.models.loader import MODEL_SPECS

    table = Table("name", "family", "source", "notes")
    table.add_row("tiny", "tiny", "built here", "pretrained on first use, cached under BENCH_CACHE")
    table.add_row(
        "tiny-ar",
        "tiny-ar",
        "built here",
        "causal LM (L2D's base); pretrained on first use, cached",
    )
    for name, spec in MODEL_SPECS.items():
        kind = "instruct (chat template)" if spec.instruct else "base"
        table.add_row(name, spec.family, spec.hub_id, f"{kind}; needs the hub or a local copy")
    table.add_row(
        "PATH",
        "auto",
        "a local folder",
        "tiny, LLaDA or Dream (remote code), DiffusionGemma (model_type diffusion_gemma), "
        "a Llama / Qwen2 causal LM, or any masked LM",
    )
    from harness.sandboxes import SANDBOXES

    for name, sandbox in SANDBOXES.items():
        what = f"methods {', '.join(sandbox.methods)}; tasks {', '.join(sandbox.tasks)}"
        table.add_row(name, "sandbox", "built per cell", f"{sandbox.description} ({what})")
    console.print(table)


def _quiet_libraries() -> None:
    """Our own progress view replaces the libraries' per-file bars and deprecation chatter."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def main() -> None:
    """Console entry point: bad input becomes one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # cells log INFO to their own log.txt only
        handler.setLevel(logging.WARNING)
    _quiet_libraries()
    try:
        app()
    except BenchError as err:
        from rich.markup import escape

        Console(stderr=True).print(
            f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
