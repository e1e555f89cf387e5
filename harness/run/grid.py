"""A grid of experiments (methods x tasks x seeds x ranks x settings) and its expansion into cells.

Every list-valued field is an axis. ``set`` holds dotted settings: ``train.*`` and ``eval.*`` apply
to every cell, ``<method>.*`` only to that method's cells (so ``nara.c_scale`` adds cells for NaRA
alone), ``method.*`` to every method, ``<task>.*`` to the cells of a task with settings of its
own (``attention_lora.alpha_ft``, the theory sandbox's data model; recorded as ``task_config``). Everything is validated before any work starts.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from harness.config.cell import (
    EVAL_ONLY_FIELDS,
    CellConfig,
    EvalConfig,
    TrainConfig,
    default_eval,
    default_method_overrides,
    default_rank,
    default_train,
    is_tiny,
)
from harness.ground.errors import BenchError
from tasks.registry import GROUPS

# The demo's tasks are the families the tiny base never saw (tasks/unseen.py): on the
# in-distribution families the base already scores 40-50% and fine-tuning has little to show.
DEMO_TASKS = GROUPS["unseen"]
DEMO_METHODS = ("base", "lora", "dora", "static_core", "nara")
UNTRAINED_SEED = 0  # the seed recorded for cells of methods that train nothing (``base``)


@dataclass(frozen=True)
class Grid:
    methods: tuple[str, ...] = DEMO_METHODS
    tasks: tuple[str, ...] = DEMO_TASKS
    seeds: tuple[int, ...] = (0,)
    ranks: tuple[int, ...] = (8,)
    sets: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    steps: tuple[int, ...] | None = None  # sampling steps; evaluated per cell without retraining
    model: str = "tiny"
    limit: int | None = None

    def cells(self) -> list[CellConfig]:
        return expand(self)

    def to_spec(self) -> dict[str, Any]:
        """The resolved grid as a YAML-able mapping (saved as <run>/grid.yaml)."""
        spec: dict[str, Any] = {
            "model": self.model,
            "methods": list(self.methods),
            "tasks": list(self.tasks),
            "seeds": list(self.seeds),
            "ranks": list(self.ranks),
            "set": {
                k: [list(v) if isinstance(v, tuple) else v for v in vs]
                for k, vs in self.sets.items()
            },
        }
        if self.steps:
            spec["steps"] = list(self.steps)
        if self.limit is not None:
            spec["limit"] = self.limit
        return spec


def parse_values(text: str) -> tuple[Any, ...]:
    """'0.05,0.1' -> (0.05, 0.1); brackets group: '[32,64],[64,128]' -> ((32, 64), (64, 128))."""
    parts = [p for p in re.split(r",(?![^\[]*\])", text) if p.strip()]
    if not parts:
        raise BenchError(f"empty list of values in {text!r}")
    return tuple(_scalar(part.strip()) for part in parts)


def _scalar(text: str) -> Any:
    """A CLI value: int, float (1e-4 too), bool, none, a [list], or the string itself."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    if text.startswith("[") and text.endswith("]"):
        return tuple(_scalar(p.strip()) for p in text[1:-1].split(",") if p.strip())
    return text


def parse_set(items: list[str]) -> dict[str, tuple[Any, ...]]:
    """['nara.c_scale=0.05,0.1', 'train.lr=1e-4'] -> {'nara.c_scale': (0.05, 0.1), ...}."""
    out: dict[str, tuple[Any, ...]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or "." not in key or not values.strip():
            raise BenchError(
                f"malformed --set {item!r}: expected SECTION.FIELD=V1[,V2...], e.g. nara.c_scale=0.05,0.1"
            )
        out[key.strip()] = parse_values(values)
    return out


def _split_list(value: Any, name: str, cast=str) -> tuple:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [i.strip() if isinstance(i, str) else i for i in items]
    items = [i for i in items if i != ""]
    try:
        return tuple(cast(i) for i in items)
    except (TypeError, ValueError) as err:
        raise BenchError(f"{name}: cannot read {value!r} as a list of {cast.__name__}") from err


GRID_KEYS = ("methods", "tasks", "seeds", "ranks", "set", "steps", "model", "limit")
# read by reports (and ``devices`` by the CLI), not by the grid
DESCRIPTIVE_KEYS = ("report", "name", "description", "preset", "devices")


def make_grid(spec: dict[str, Any]) -> Grid:
    """A Grid from a mapping (YAML file or CLI options); unknown keys and empty axes fail."""
    unknown = set(spec) - set(GRID_KEYS) - set(DESCRIPTIVE_KEYS)
    if unknown:
        raise BenchError(
            f"unknown grid key(s) {', '.join(sorted(unknown))}; valid: {', '.join(GRID_KEYS)}"
        )
    sets = {}
    for key, values in (spec.get("set") or {}).items():
        sets[key] = parse_values(values) if isinstance(values, str) else _as_tuple(values)
        if "." not in key:
            raise BenchError(f"malformed setting {key!r}: expected SECTION.FIELD, e.g. train.lr")
    axes = {
        "methods": _split_list(spec.get("methods"), "methods"),
        "tasks": _split_list(spec.get("tasks"), "tasks"),
        "seeds": _split_list(spec.get("seeds"), "seeds", int),
        "ranks": _split_list(spec.get("ranks"), "ranks", int),
        "steps": _split_list(spec.get("steps"), "steps", int),
    }
    for name, values in axes.items():
        if spec.get(name) is not None and not values:
            raise BenchError(f"the {name} axis is empty")
    for seed in axes["seeds"]:
        if not 0 <= seed < 2**32:  # numpy's seed range, which the data draws use
            raise BenchError(f"seeds must be integers in [0, 2**32), got {seed}")
    grid = Grid(
        methods=axes["methods"] or DEMO_METHODS,
        tasks=axes["tasks"] or DEMO_TASKS,
        seeds=axes["seeds"] or (0,),
        ranks=axes["ranks"] or (default_rank(str(spec.get("model") or "tiny")),),
        sets=sets,
        steps=axes["steps"] or None,
        model=str(spec.get("model") or "tiny"),
        limit=spec.get("limit"),
    )
    return grid


def _yaml_value(value: Any) -> Any:
    """A value from a grid file, read as the command line reads it: YAML 1.1 leaves ``1e-4``
    (no dot) a string, which would otherwise reach ``train.lr`` as text."""
    if isinstance(value, str):
        return _scalar(value.strip())
    if isinstance(value, list):
        return tuple(_yaml_value(v) for v in value)
    return value


def _as_tuple(values: Any) -> tuple[Any, ...]:
    if isinstance(values, list | tuple):
        if not values:
            raise BenchError("an axis in 'set' is empty")
        return tuple(_yaml_value(v) for v in values)
    return (_yaml_value(values),)


def _dataclass_fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "text"}


def _typed(cls, section: str, name: str, value: Any) -> Any:
    """``value`` if field ``name`` of ``cls`` takes it (an int where a float is declared, kept
    as given so that cell ids do not change), else one line naming the type the field takes."""
    hint = typing.get_type_hints(cls)[name]
    allowed = (
        typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType)
        else (hint,)
    )
    if value is None and type(None) in allowed:
        return value
    for kind in allowed:
        if kind is bool and isinstance(value, bool):
            return value
        if isinstance(value, bool):
            continue
        if kind is int and isinstance(value, int):
            return value
        if kind is float and isinstance(value, int | float):
            return value
        if kind is str and isinstance(value, str):
            return value
    if not all(kind in _TYPE_WORDS or kind is type(None) for kind in allowed):
        return value  # a structured field: its own check reads it
    words = " or ".join(_TYPE_WORDS.get(k, "none") for k in allowed)
    raise BenchError(f"{section}.{name} must be {words}, got {value!r}")


def _replace(obj, updates: dict[str, Any], section: str):
    valid = _dataclass_fields(type(obj))
    unknown = set(updates) - valid
    if unknown:
        raise BenchError(
            f"unknown setting {section}.{sorted(unknown)[0]}; valid {section} fields: {', '.join(sorted(valid))}"
        )
    typed = {name: _typed(type(obj), section, name, value) for name, value in updates.items()}
    return dataclasses.replace(obj, **typed)


def expand(grid: Grid) -> list[CellConfig]:
    """All cells of the grid, in a stable order (task-major, so one task's data loads once)."""
    from harness.models.loader import base_objective, known_model, valid_model_names
    from harness.models.sandboxes import SANDBOXES, check_cell
    from methods.registry import METHODS, check_serves, get_method
    from tasks.registry import resolve_tasks, settings_tasks

    known = known_model(grid.model) or grid.model in SANDBOXES
    if not known:
        raise BenchError(f"unknown model {grid.model!r}; valid: {valid_model_names()}")
    methods = [get_method(m).name for m in grid.methods]
    sandbox = grid.model in SANDBOXES  # the sandboxes check their own cells (check_cell)
    objective = "masked-diffusion" if sandbox else base_objective(grid.model)
    for name in methods if not sandbox else ():
        check_serves(get_method(name), grid.model, objective)
    if grid.steps and objective != "masked-diffusion":
        raise BenchError(
            f"--steps sets a masked-diffusion sampler's steps; {grid.model} is autoregressive "
            "(one forward per token): vary L2D's flow with --set eval.l2d_steps=... instead"
        )
    tasks = resolve_tasks(list(grid.tasks))
    sections = ("train", "eval", "method", *METHODS, *settings_tasks())
    for key in grid.sets:
        section = key.split(".", 1)[0]
        if section not in sections:
            raise BenchError(
                f"unknown --set section {section!r} in {key!r}; valid: {', '.join(sections)}"
            )
        if not grid.sets[key]:
            raise BenchError(f"the {key} axis is empty")
        if key == "eval.limit" and grid.limit is not None:
            raise BenchError(
                f"the limit is given twice (--limit {grid.limit} and --set eval.limit): give one"
            )
        if section in ("method", *METHODS) and key.split(".", 1)[1] == "rank":
            # it would silently replace every --ranks value (two ranks, one cell)
            raise BenchError(
                f"the rank is a grid axis: use --ranks {','.join(map(str, grid.sets[key]))} "
                f"(a grid file: ranks: [...]) instead of --set {key}"
            )
    for steps in grid.steps or ():
        if steps <= 0:
            raise BenchError(f"sampling steps must be positive, got {steps}")

    cells: list[CellConfig] = []
    for task, method, rank, seed in itertools.product(tasks, methods, grid.ranks, grid.seeds):
        if rank <= 0:
            raise BenchError(f"rank must be a positive integer, got {rank}")
        trains = get_method(method).trains
        # A method that trains nothing (the base model) depends only on the evaluation
        # settings: one cell per task and eval setting, whatever the seeds, ranks, train.*.
        sections = ("train", "eval", "method", method, task.name) if trains else ("eval",)
        relevant = {
            k: v
            for k, v in grid.sets.items()
            if k.split(".", 1)[0] in sections
            and k not in _EVAL_ONLY_KEYS  # evaluated per cell, like steps: no new cells
        }
        keys = sorted(relevant)
        for combo in itertools.product(*(relevant[k] for k in keys)):
            chosen = dict(zip(keys, combo, strict=True))
            check_cell(grid.model, method, task.name, chosen)
            if trains:
                cell = _make_cell(grid, task, method, rank, seed, chosen)
            else:
                cell = _make_untrained_cell(grid, task, method, chosen)
            cells.append(cell)
    if not cells:
        raise BenchError("the grid has no cells")
    return group_by_training(cells)


def unused_settings(grid: Grid) -> list[str]:
    """``--set`` keys of a method that is not in the grid (a preset's ``nara.*`` with
    ``--methods lora``, or a misspelt method): they change nothing, which the run says."""
    from methods.registry import METHODS, get_method

    run = {get_method(m).name for m in grid.methods}
    return [k for k in grid.sets if k.split(".", 1)[0] in METHODS and k.split(".", 1)[0] not in run]


def group_by_training(cells: list[CellConfig]) -> list[CellConfig]:
    """Cells that train the same adapter (same id: a suite training set and identical settings)
    become one cell evaluating all their tasks, in the order the tasks were given."""
    merged: dict[str, CellConfig] = {}
    for cell in cells:
        first = merged.get(cell.cell_id)
        if first is None:
            merged[cell.cell_id] = cell
        else:
            tasks = first.eval_tasks + tuple(
                t for t in cell.eval_tasks if t not in first.eval_tasks
            )
            merged[cell.cell_id] = dataclasses.replace(first, eval_tasks=tasks)
    return list(merged.values())


def _training_identity(model: str, task, train: TrainConfig) -> tuple[str, TrainConfig, str]:
    """(what the cell trains on, the train config with ``data`` resolved, a note on the choice).

    ``suite`` trains on the suite's training set; ``task`` on the task's own training split;
    ``auto`` picks suite when the suite's training set can be read here without the network
    (a local file, a cached download), else task, and says so in the note."""
    from tasks.training_sets import SUITE_TRAINING, availability, suite_training_set

    suite_set = suite_training_set(task.suite)
    mode, note = train.data, ""
    if mode == "auto":
        found = availability(suite_set) if suite_set is not None else None
        mode = "suite" if found else "task"
        if suite_set is None:
            note = (
                f"train.data=auto: {task.suite} tasks have no suite training set; trained per task"
            )
        elif found:
            note = f"train.data=auto: suite training set {suite_set.name} found ({found})"
        else:
            note = (
                f"train.data=auto: suite training set {suite_set.name} is not available here; "
                f"one adapter per task on the task's own training data"
            )
    if mode == "suite":
        if suite_set is None:
            raise BenchError(
                f"train.data=suite: task {task.name} ({task.suite}) has no suite training set; "
                f"suites with one: {', '.join(SUITE_TRAINING)}; use --set train.data=task"
            )
        return suite_set.name, dataclasses.replace(train, data="suite"), note
    return task.name, dataclasses.replace(train, data="task"), note


def _make_untrained_cell(grid: Grid, task, method: str, chosen: dict[str, Any]) -> CellConfig:
    """A cell of a method without training: default training config (used only for the
    validation loss per noise bin), seed :data:`UNTRAINED_SEED`, no method settings, no rank."""
    cell = _make_cell(grid, task, method, None, UNTRAINED_SEED, chosen)
    return dataclasses.replace(cell, axes={k: v for k, v in cell.axes.items() if k != "rank"})


def _make_cell(
    grid: Grid, task, method: str, rank: int | None, seed: int, chosen: dict[str, Any]
) -> CellConfig:
    from methods.registry import get_method
    from tasks.registry import task_settings

    train: TrainConfig = default_train(grid.model, task.suite)
    evaluation: EvalConfig = default_eval(grid.model, task.suite)
    if is_tiny(grid.model):  # the task's own tiny defaults (more updates, a larger scored set)
        own = task.meta.get("tiny", {})
        train = _replace(train, dict(own.get("train", {})), "train")
        evaluation = _replace(evaluation, dict(own.get("eval", {})), "eval")
    if grid.limit is not None:
        evaluation = dataclasses.replace(evaluation, limit=int(grid.limit))
    overrides: dict[str, Any] = {**default_method_overrides(grid.model, method)}
    if rank is not None:
        overrides["rank"] = rank
    train_updates, eval_updates, task_updates = {}, {}, {}
    for key, value in chosen.items():
        section, name = key.split(".", 1)
        if section == "train":
            train_updates[name] = value
        elif section == "eval":
            eval_updates[name] = value
        elif section == task.name:
            task_updates[name] = value
        else:
            overrides[name] = value
    for key in _EVAL_ONLY_KEYS:  # the cell's own record shows the first sampler it evaluates
        if key in grid.sets:
            name = key.split(".", 1)[1]
            eval_updates[name] = _flow_value(name, grid.sets[key][0])
    train = _replace(train, train_updates, "train")
    evaluation = _replace(evaluation, eval_updates, "eval")
    trains_on, train, note = _training_identity(grid.model, task, train)
    method_config = get_method(method).config(**overrides).to_dict()  # validates every field
    axes = {k: v for k, v in chosen.items() if len(grid.sets[k]) > 1}
    if len(grid.ranks) > 1 and rank is not None:
        axes["rank"] = rank
    return CellConfig(
        model=grid.model,
        method=method,
        method_config=method_config,
        task=trains_on,
        suite=task.meta.get("sub_suite", task.suite) if task.suite == "synthetic" else task.suite,
        seed=seed,
        train=train,
        eval=evaluation,
        axes=axes,
        eval_tasks=(task.name,),
        train_data_note=note,
        task_config=task_settings(task, task_updates),  # validates every field
    )


def sampling_steps(grid: Grid, cell: CellConfig) -> list[int]:
    """The grid's ``--steps``, else one step per generated token of the cell's OWN generation
    length (an ``eval.gen_length`` override counts: the suite default would silently decode
    several tokens per step)."""
    return list(grid.steps) if grid.steps else [cell.eval.gen_length]


_EVAL_ONLY_KEYS = tuple(f"eval.{name}" for name in EVAL_ONLY_FIELDS)


def _setting_text(value: Any) -> str:
    """The command line reads ``none`` as None; the sampler settings spell it out."""
    return "none" if value is None else str(value)


def sampling_variants(grid: Grid, cell: CellConfig) -> list[dict[str, str]]:
    """The fast-sampling settings to evaluate a cell's adapter with: every combination of the
    ``eval.cache`` / ``eval.parallel`` / ``eval.cache_refresh`` values (validated), in grid order."""
    from harness.config.cell import sampler_fields
    from harness.config.sampling import DEFAULTS, sampler_label

    fields = sampler_fields(cell.method)
    values = [
        [_flow_value(name, v) for v in grid.sets.get(f"eval.{name}", (getattr(cell.eval, name),))]
        for name in fields
    ]
    variants, labels = [], set()
    for combo in itertools.product(*values):
        variant = dict(zip(fields, combo, strict=True))
        cell.eval.with_sampler(variant)  # validates every value
        label = sampler_label(**variant)  # an adaptive solver ignores the steps: evaluated once
        if label not in labels:
            labels.add(label)
            variants.append(variant)
    return variants or [dict(DEFAULTS)]


def _flow_value(name: str, value: Any):
    """Sampler settings are text, the flow's step count an integer."""
    return int(value) if name == "l2d_steps" else _setting_text(value)
