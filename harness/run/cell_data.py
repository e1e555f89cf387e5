"""A cell's examples: the split it trains on and the split each evaluated task is scored on.

Shared by the cell (which trains and scores) and the stale-score check (which compares what a
finished cell was scored on with what it would be scored on now).
"""

from __future__ import annotations

from harness.config.cell import CellConfig


def training_split(cell: CellConfig):
    """(training split, the scored split of a one-task cell or None).

    train.data=suite reads the suite training set; train.data=task reads the task's own training
    split together with its scored split, since a fallback carve moves examples between them."""
    from tasks.registry import get_task
    from tasks.sources import load_task_data
    from tasks.training_sets import load_training_set

    if cell.train.data == "suite":
        return load_training_set(cell.task, limit=cell.train.train_limit), None
    data = load_task_data(
        get_task(cell.task),
        seed=cell.seed,
        limit=cell.eval.limit,
        train_limit=cell.train.train_limit,
    )
    return data.train, data.test


def scored_split(cell: CellConfig, task: str):
    """The examples ``task`` is scored on in this cell (never any the adapter trained on)."""
    from tasks.registry import get_task
    from tasks.sources import load_split

    if cell.train.data == "task":
        return training_split(cell)[1]
    return load_split(get_task(task), "test", seed=cell.seed, limit=cell.eval.limit)
