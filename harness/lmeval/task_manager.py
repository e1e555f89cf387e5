"""lm-eval's TaskManager for the tasks asked for: a local folder of task YAMLs first, lm-eval's
own index only when needed; unknown task names are one BenchError with close matches."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Sequence
from pathlib import Path

from harness.ground.errors import BenchError


def task_manager_for(tasks: Sequence[str], include_path: Path | None):
    """A TaskManager that knows every task in ``tasks``; unknown names raise one BenchError.

    With ``include_path`` holding every task, lm-eval's own ~15,000 task index is not built
    (that takes ~20 s)."""
    from lm_eval.tasks import TaskManager

    if include_path is not None:
        include_path = Path(include_path).expanduser()
        if not include_path.is_dir():
            raise BenchError(f"--include-path {include_path} is not a folder of task YAMLs")
        local = TaskManager(include_path=str(include_path), include_defaults=False)
        if not _unknown_tasks(local, tasks):
            return local
    manager = TaskManager(include_path=str(include_path) if include_path else None)
    unknown = _unknown_tasks(manager, tasks)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, manager.all_tasks, n=3, cutoff=0.75)
            hints.append(f"{name} (did you mean {', '.join(close)}?)" if close else name)
        raise BenchError(
            f"unknown lm-eval task(s): {'; '.join(hints)}. List the tasks with `lm-eval ls tasks` "
            "(add --include_path DIR for your own YAMLs), or pass --include-path DIR"
        )
    return manager


def _unknown_tasks(manager, tasks: Sequence[str]) -> list[str]:
    known = set(manager.all_tasks)
    unknown = []
    for name in tasks:
        if name in known or Path(name).is_file():
            continue
        if any(ch in name for ch in "*?[") and fnmatch.filter(manager.all_tasks, name):
            continue
        unknown.append(name)
    return unknown
