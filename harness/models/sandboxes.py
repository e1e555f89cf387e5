"""Sandbox models: grid cells that are not a dLLM fine-tuning and run a cell function of their own.

A dLLM cell (tiny, LLaDA, Dream, a model folder) runs :func:`harness.run.cell.run_cell`. A sandbox is
registered here under its model name with the methods and tasks that belong to it and the cell
function that runs them; the grid checks every cell against it when it expands (one line for a
sandbox method on a dLLM, a dLLM method on a sandbox, or ``train.*``/``eval.*`` settings that a
sandbox would ignore), and the runner asks :func:`sandbox_cell_function` which function to run.
The cell function has ``run_cell``'s signature and returns a finished ``results.schema.Record``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.ground.errors import BenchError


@dataclass(frozen=True)
class Sandbox:
    model: str
    description: str
    methods: tuple[str, ...]
    tasks: tuple[str, ...]
    cell_function: str  # "module:function", imported when a cell runs
    estimate: (
        str  # "module:function": the dry run's cost of one cell (a harness.run.cell_cost.Cost)
    )

    def load(self, which: str = "cell_function") -> Callable:
        module, _, name = getattr(self, which).partition(":")
        return getattr(importlib.import_module(module), name)


SANDBOXES: dict[str, Sandbox] = {
    s.model: s
    for s in (
        Sandbox(
            model="attention",
            description="rank-one LoRA theory sandbox: one tied single-head attention layer",
            methods=("rank_one_lora",),
            tasks=("attention_lora",),
            cell_function="harness.run.theory_cell:run_theory_cell",
            estimate="harness.run.theory_cell:estimate_cell",
        ),
    )
}


def sandbox_of(model: str) -> Sandbox | None:
    return SANDBOXES.get(model)


def sandbox_cell_function(cell) -> Callable | None:
    """The cell function of ``cell``'s sandbox; None for a dLLM cell (``run_cell``)."""
    sandbox = sandbox_of(cell.model)
    return None if sandbox is None else sandbox.load()


def check_cell(model: str, method: str, task: str, settings: dict[str, Any]) -> None:
    """One BenchError line when a cell of ``model`` x ``method`` x ``task`` mixes a sandbox with
    what does not belong to it; ``settings`` are the grid's ``--set`` values chosen for it."""
    sandbox = sandbox_of(model)
    if sandbox is None:
        for other in SANDBOXES.values():
            if method in other.methods or task in other.tasks:
                what = method if method in other.methods else task
                raise BenchError(
                    f"{what} belongs to the {other.model!r} sandbox: run it with "
                    f"--model {other.model} --methods {','.join(other.methods)} "
                    f"--tasks {','.join(other.tasks)}"
                )
        return
    if method not in sandbox.methods or task not in sandbox.tasks:
        raise BenchError(
            f"--model {sandbox.model} is the {sandbox.description}; it runs only "
            f"methods {', '.join(sandbox.methods)} on tasks {', '.join(sandbox.tasks)} "
            f"(got {method} on {task})"
        )
    ignored = sorted(k for k in settings if k.split(".", 1)[0] in ("train", "eval"))
    if ignored:
        raise BenchError(
            f"--model {sandbox.model} ignores train.* and eval.* settings (got {ignored[0]}); "
            f"its optimiser is {sandbox.methods[0]}.steps/lr, its data {sandbox.tasks[0]}.*"
        )
