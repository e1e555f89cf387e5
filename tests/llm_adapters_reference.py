"""LLM-Adapters' own prompt templates, answer extraction and test sets, loaded at test time.

The reference code (``finetune.py``, ``evaluate.py``, ``commonsense_evaluate.py``) lives in
``../shared/fixtures/reference-code/llm-adapters/`` and its test sets in
``../shared/data/llm-adapters/<Name>/test.json`` (third-party material, never copied into the
project). Importing those scripts would pull in fire, torch, transformers and their training code,
so only the pure functions are taken: each file is parsed with :mod:`ast`, and the named top-level
functions alone are compiled and run in a namespace holding ``re`` (all they need).

``SHARED`` is None when ``../shared`` is absent; ``require()`` then skips the test with a reason.
"""

from __future__ import annotations

import ast
import json
import os
import re
from functools import cache
from pathlib import Path
from types import SimpleNamespace

_DEFAULT = Path(__file__).resolve().parents[2] / "shared"
_SHARED = Path(os.environ.get("BENCH_SHARED", _DEFAULT))
CODE = _SHARED / "fixtures" / "reference-code" / "llm-adapters"
DATA = _SHARED / "data" / "llm-adapters"
SHARED: Path | None = _SHARED if CODE.is_dir() and DATA.is_dir() else None
SKIP_REASON = (
    f"LLM-Adapters' reference code and test sets are not here ({CODE}, {DATA}: ../shared is "
    "absent); these conformance tests need them"
)

# LLM-Adapters folder -> bench task (the folder names are the reference scripts' --dataset values)
MATH_SETS = {
    "AQuA": "aqua",
    "AddSub": "addsub",
    "MultiArith": "multiarith",
    "SVAMP": "svamp",
    "SingleEq": "singleeq",
    "gsm8k": "gsm8k",
}
COMMONSENSE_SETS = {
    "boolq": "boolq",
    "piqa": "piqa",
    "social_i_qa": "siqa",
    "hellaswag": "hellaswag",
    "winogrande": "winogrande",
    "ARC-Easy": "arc_e",
    "ARC-Challenge": "arc_c",
    "openbookqa": "obqa",
}


def require() -> Path:
    """The shared folder, or a pytest skip that says why."""
    import pytest

    if SHARED is None:
        pytest.skip(SKIP_REASON)
    return SHARED


@cache
def functions(file: str, *names: str) -> SimpleNamespace:
    """The named top-level functions of a reference script, compiled from its own source."""
    path = require() / "fixtures" / "reference-code" / "llm-adapters" / file
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    picked = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    missing = set(names) - {n.name for n in picked}
    if missing:
        raise LookupError(f"{path}: no top-level function(s) {sorted(missing)}")
    namespace: dict = {"re": re}
    exec(compile(ast.Module(body=picked, type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102
    return SimpleNamespace(**{name: namespace[name] for name in names})


def train_prompt(instruction: str, input: str = "", output: str = "") -> str:
    """finetune.py's ``generate_prompt(data_point)``."""
    gen = functions("finetune.py", "generate_prompt").generate_prompt
    return gen({"instruction": instruction, "input": input, "output": output})


def eval_prompt(instruction: str, input: str | None = None, file: str = "evaluate.py") -> str:
    """evaluate.py's (or commonsense_evaluate.py's) ``generate_prompt(instruction, input)``."""
    return functions(file, "generate_prompt").generate_prompt(instruction, input)


def math_verdict(folder: str, output: str, answer) -> bool:
    """evaluate.py's own verdict on one output: its extraction and its comparison."""
    ref = functions("evaluate.py", "extract_answer_number", "extract_answer_letter")
    args = SimpleNamespace(dataset=folder)
    if folder.lower() == "aqua":
        return answer == ref.extract_answer_letter(args, output)
    label = float(answer) if isinstance(answer, str) else answer
    return abs(label - ref.extract_answer_number(args, output)) <= 0.001


def commonsense_verdict(folder: str, output: str, answer: str) -> bool:
    """commonsense_evaluate.py's own verdict on one output."""
    ref = functions("commonsense_evaluate.py", "extract_answer")
    return answer == ref.extract_answer(SimpleNamespace(dataset=folder), output)


def present_sets(sets: dict[str, str]) -> list[str]:
    """The folders of ``sets`` whose test.json is here (hellaswag's is not in the mirror)."""
    return [f for f in sets if (DATA / f / "test.json").is_file()]


@cache
def rows(folder: str) -> tuple[dict, ...]:
    """One test set as LLM-Adapters ships it: a list of instruction/input/output/answer rows."""
    path = require() / "data" / "llm-adapters" / folder / "test.json"
    return tuple(json.loads(path.read_text(encoding="utf-8")))
