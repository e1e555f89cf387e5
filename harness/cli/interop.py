"""Commands that meet tools outside bench: `bench score` (outputs produced elsewhere), `bench eval`
(lm-evaluation-harness tasks) and `bench export` (a plain peft LoRA folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.app import app, console
from harness.ground.errors import BenchError


@app.command()
def score(
    task: Annotated[str, typer.Option(help="Task name (bench list tasks).")],
    predictions: Annotated[Path, typer.Option(help="JSONL: one {id, output} object per line.")],
    protocol: Annotated[
        str | None, typer.Option(help="gen or loglik (default: the task's).")
    ] = None,
    show: Annotated[int, typer.Option(help="Per-example rows to print.")] = 20,
    follows: Annotated[
        str,
        typer.Option(
            help="The protocol whose answer rules apply: bench, llm-adapters, llada, lm-eval."
        ),
    ] = "bench",
) -> None:
    """Score outputs produced elsewhere with exactly the runner's scorer."""
    from rich.table import Table

    from tasks.cli import score_predictions

    metrics, rows = score_predictions(task, predictions, protocol, follows=follows)
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
    from harness.lmeval import run_lm_eval
    from harness.run.grid import parse_values

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
    from harness.run.adapter_paths import resolve_adapter
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
