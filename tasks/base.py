"""Typed records shared by every task: examples, provenance of a loaded split, and the task spec.

A task is declared as one small `TaskSpec` (see `tasks/commonsense.py`, `tasks/math_tasks.py`,
`tasks/code_tasks.py`, `tasks/synthetic_tasks.py`); the source interface (`Source`) is here, loading lives in `tasks/sources/`, prompts in
`tasks/prompts.py`, scoring in `tasks/scoring.py` and `tasks/evaluate.py`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Suite = Literal["commonsense", "math", "code", "synthetic"]
SourceKind = Literal["package", "hub", "local", "synthetic", "fallback"]
Protocol = Literal["gen", "loglik"]


@dataclass(frozen=True)
class Example:
    """One task example.

    `prompt` is the task text WITHOUT the instruction template (the Alpaca/chat wrapper is added by
    `tasks.prompts.format_prompt`); the answer-format hint, when the task has one, is in
    `meta["format_hint"]`. `target` is the reference response used for supervised fine-tuning.
    """

    id: str
    prompt: str
    target: str
    choices: tuple[str, ...] | None = None
    label: int | None = None
    answer: str | None = None
    tests: str | None = None
    entry_point: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


Convert = Callable[[dict[str, Any], int], Example | None]

_LOAD_CACHE: dict[Source, tuple[tuple[Example, ...], str]] = {}


class SourceUnavailable(Exception):
    """A source cannot serve data on this machine; the resolver moves on to the next one."""


@dataclass(frozen=True)
class Source:
    """One place a split can come from. `convert(row, index)` maps a raw row to an Example (or
    None to drop the row)."""

    convert: Convert
    size: int | None = None  # known number of examples, for listings without loading

    kind = "package"

    def describe(self) -> str:
        raise NotImplementedError

    def availability(self) -> str | None:
        """A short word when this source can serve here, judged without the network."""
        raise NotImplementedError

    def rows(self) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def load(self) -> tuple[list[Example], str]:
        if self in _LOAD_CACHE:
            examples, detail = _LOAD_CACHE[self]
            return list(examples), detail
        examples = []
        for i, row in enumerate(self.rows()):
            ex = self.convert(row, i)
            if ex is not None:
                examples.append(ex)
        if self.kind == "package":  # files of an installed package do not change in a process
            _LOAD_CACHE[self] = (tuple(examples), self.describe())
        return examples, self.describe()


@dataclass(frozen=True)
class Provenance:
    """Where a loaded split came from; recorded with every result."""

    source: SourceKind
    detail: str
    content_hash: str
    split: str
    size: int
    limit: int | None = None
    fallback_of: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoadedSplit:
    examples: list[Example]
    provenance: Provenance


@dataclass(frozen=True)
class Fallback:
    """How to build a training split when no training source is reachable.

    Either `sources` (another split that is disjoint from the scored one, e.g. ARC validation for
    ARC test), or a seeded carve: `fraction` of the eval set (at most `max_size`) moved out of the
    scored part into training.
    """

    sources: tuple[Source, ...] = ()
    fraction: float = 0.5
    max_size: int = 2000


@dataclass(frozen=True)
class TaskSpec:
    """A declarative task: data sources per split, prompt format, answer checking.

    `kind` selects the scorer: "choice" (first match of `pattern` equals the gold answer), "number"
    (last number within 1e-3), "boxed" (normalised \\boxed{} answer), "letter" (first letter A-D, or `meta["letters"]`), "word" (first word equals the answer),
    "code" (program run in the sandbox).
    """

    name: str
    suite: Suite
    kind: Literal["choice", "number", "boxed", "letter", "word", "code"]
    protocols: tuple[Protocol, ...]
    default_protocol: Protocol
    test_sources: tuple[Source, ...] = ()
    train_sources: tuple[Source, ...] = ()
    fallback: Fallback | None = None
    format_hint: str = ""
    pattern: str | None = None
    metric: str = "accuracy"
    program: Callable[[Example, str], str] | None = None
    code_mode: Literal["body", "function"] = "body"
    test_size: int | None = None
    make_split: Callable[[str, int, int], list[Example]] | None = None
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    # A typed frozen dataclass of the task's own settings (``--set <task>.FIELD=...`` grid axes,
    # recorded as the cell's ``task_config``); None for tasks without settings.
    settings: type | None = None

    @property
    def group(self) -> str:
        return self.meta.get("sub_suite", self.suite)


def example_to_dict(example: Example) -> dict[str, Any]:
    return {
        "id": example.id,
        "prompt": example.prompt,
        "target": example.target,
        "choices": list(example.choices) if example.choices is not None else None,
        "label": example.label,
        "answer": example.answer,
        "tests": example.tests,
        "entry_point": example.entry_point,
        "meta": example.meta,
    }


def example_from_dict(d: dict[str, Any]) -> Example:
    """Build an Example from a JSON object in our own format (keys of `Example`)."""
    choices = d.get("choices")
    label = d.get("label")
    return Example(
        id=str(d["id"]),
        prompt=str(d["prompt"]),
        target=str(d["target"]),
        choices=tuple(str(c) for c in choices) if choices is not None else None,
        label=int(label) if label is not None else None,
        answer=None if d.get("answer") is None else str(d["answer"]),
        tests=d.get("tests"),
        entry_point=d.get("entry_point"),
        meta=dict(d.get("meta") or {}),
    )


def content_hash(examples: Sequence[Example]) -> str:
    """sha256 over the canonical JSON of the examples, in order."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(example_to_dict(ex), sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return "sha256:" + h.hexdigest()
