"""What `bench run --dry-run` prints: each cell with its cost, the plan per worker, and the
smallest paired effect the grid can detect per task."""

from __future__ import annotations

from pathlib import Path

from harness.cli.app import console


def _print_plan(requests, out: Path, device_kind: str | None = None, workers: int = 1) -> None:
    from rich.table import Table

    from harness.config.cell import is_tiny
    from harness.costs import planning_device
    from harness.models.sandboxes import sandbox_of
    from harness.run.cell_cost import estimate, grid_seconds, param_labels, token_labels
    from harness.run.preflight import missing_data, process_problems

    real = any(not is_tiny(r.cell.model) and sandbox_of(r.cell.model) is None for r in requests)
    if device_kind is not None:
        planning_device(device_kind)  # a misspelt kind fails even where nothing is costed on it
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
    cells = [r.cell for r in requests]
    for line in [*notes, *missing_data(cells), *process_problems(requests)]:
        console.print(line, highlight=False, soft_wrap=True)
    for line in _power_lines(cells):
        console.print(line)


def _print_worker_plan(requests, executor, device_kind: str | None = None) -> None:
    """The dry run's plan per worker (harness/run/executors/worker_plan.py)."""
    from rich.table import Table

    from harness.run.executors.worker_plan import plan_workers

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
