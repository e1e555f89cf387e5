"""Task specs for the synthetic families of `tasks/synthetic.py` (suite "synthetic").

- synth_math: numeric answer, scored like GSM8K (last number within 1e-3);
- synth_choice: 4-way choice, scored by the first letter A-D of the output, or by log-likelihood
  over the choice texts;
- synth_code: a one-line function body (an expression after `return`), run against hidden asserts
  in the sandbox.
"""

from __future__ import annotations

from functools import partial

from harness.ground.errors import BenchError
from tasks.base import Example, TaskSpec
from tasks.synthetic import SYNTHETIC_TASKS, SyntheticFamily, draw_split
from tasks.unseen import TEST_SIZES, TINY_DEFAULTS, UNSEEN_TASKS


def all_families() -> dict[str, SyntheticFamily]:
    """The in-distribution families (in the base's pretraining mix) and the unseen ones (not)."""
    return {**SYNTHETIC_TASKS, **UNSEEN_TASKS}


def make_split(name: str, split: str, n: int, seed: int = 0) -> list[Example]:
    """``n`` distinct examples of one family's split, deterministic for (name, split, n, seed)."""
    families = all_families()
    if name not in families:
        raise BenchError(f"unknown synthetic task {name!r}; valid: {', '.join(families)}")
    return draw_split(families[name], name, split, n, seed)


def synth_code_program(example: Example, completion: str) -> str:
    """The function (its I/O examples are only shown in the prompt) with the generated return
    expression, then the hidden asserts."""
    return f"def f(x):\n    return {completion.strip()}\n{example.tests}\n"


def _make(name: str, split: str, n: int, seed: int) -> list[Example]:
    return make_split(name, split, n, seed)


_KIND = {"math": "number", "commonsense": "word", "code": "code"}
# The unseen families have larger test splits, so that a demo can reach a small MDE, and their
# own tiny defaults (meta "tiny": train / eval settings the grid applies before any --set).
_META = {
    name: {"sizes": {"test": TEST_SIZES[name]}, "tiny": TINY_DEFAULTS.get(name, {})}
    for name in UNSEEN_TASKS
}

TASKS: tuple[TaskSpec, ...] = tuple(
    TaskSpec(
        name=family.name,
        suite="synthetic",
        kind=_KIND[family.suite],  # type: ignore[arg-type]
        protocols=("gen", "loglik") if family.suite == "commonsense" else ("gen",),
        default_protocol="gen",
        metric="pass@1" if family.suite == "code" else "accuracy",
        program=synth_code_program if family.suite == "code" else None,
        code_mode="body",
        make_split=partial(_make, family.name),
        description=family.description,
        meta={
            "sub_suite": family.suite,
            **_META.get(family.name, {}),
        },
    )
    for family in all_families().values()
)
