"""The LLM-Adapters math evaluation sets the NaRA paper adds to GSM8K and MATH: SVAMP, AQuA, AddSub,
MultiArith and SingleEq, and the math_14k training file of the same repository.

No installed package carries them. They are single JSON files in the LLM-Adapters repository
(``dataset/<Name>/test.json``, ``ft-training_set/math_14k.json``): a JSON list of objects with
``instruction`` (the question; AQuA's lists "Answer Choices: (A) ... (E) ..."), ``input`` (empty),
``output`` (a rationale ending "The answer is N") and ``answer`` (a number or a letter; some copies
wrap it in a one-element list). They load from, in this order:

1. a local file: ``$BENCH_DATA_DIR/<task>/test.json`` (or ``.jsonl``), or the repository's own
   folder name (``$BENCH_DATA_DIR/AQuA/test.json``: point ``$BENCH_DATA_DIR`` at a copy of its
   ``dataset/`` folder), in that format or bench's own (``id``, ``prompt``, ``target``,
   ``answer``);
2. the repository file over HTTPS (``UrlJsonSource``), downloaded once into
   ``$BENCH_CACHE/data/`` and read from there afterwards (offline too).

The instruction is kept as the file has it (leading and trailing spaces included: 395 AddSub and
600 MultiArith questions have them). Scoring: the last number of the output within 1e-3 (the four
arithmetic sets, under every protocol); AQuA's letter is LLM-Adapters' first capital A-E anywhere
under the ``llm-adapters`` protocol and the first standalone letter otherwise (tasks/protocols.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.ground.hub import HUB_ENV, hub_offline_by_env
from tasks.base import Example, TaskSpec
from tasks.sources import Source, SourceUnavailable

REPO = "AGI-Edgerunners/LLM-Adapters"
RAW = f"https://raw.githubusercontent.com/{REPO}/main"
_REACHABLE: dict[str, bool] = {}


def _cache_root() -> Path:
    base = os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench")
    return Path(base).expanduser() / "data"


def host_reachable(host: str, timeout: float = 2.0) -> bool:
    """One TCP connect per host and process; the hub's offline switches apply here too."""
    if hub_offline_by_env():
        return False
    if os.environ.get(HUB_ENV) == "1":
        return True
    if host not in _REACHABLE:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            _REACHABLE[host] = True
        except OSError:
            _REACHABLE[host] = False
    return _REACHABLE[host]


@dataclass(frozen=True)
class UrlJsonSource(Source):
    """A JSON (list) or JSONL file at a URL, cached under ``$BENCH_CACHE/data/`` after the first
    download so that later runs work offline."""

    url: str = ""
    kind = "hub"

    def cached_path(self) -> Path:
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:12]
        return _cache_root() / f"{Path(self.url).parent.name}-{Path(self.url).name}.{digest}"

    def describe(self) -> str:
        return f"url:{self.url}"

    def availability(self) -> str | None:
        return "downloaded (cached)" if self.cached_path().is_file() else None

    def rows(self) -> Iterator[dict[str, Any]]:
        path = self.cached_path()
        if not path.is_file():
            if os.environ.get(HUB_ENV) == "0":
                raise SourceUnavailable(f"{self.url}: downloads disabled (BENCH_HUB=0)")
            host = self.url.split("://", 1)[-1].split("/", 1)[0]
            if not host_reachable(host):
                raise SourceUnavailable(f"{self.url}: not reachable from here")
            self._download(path)
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if text.lstrip().startswith("[") else _jsonl(text)
        yield from data

    def _download(self, path: Path) -> None:
        import urllib.request

        from results.store import atomic_write_bytes

        try:
            with urllib.request.urlopen(self.url, timeout=30) as response:  # noqa: S310
                payload = response.read()
            json.loads(payload) if payload.lstrip().startswith(b"[") else None
        except (OSError, ValueError) as e:
            raise SourceUnavailable(f"{self.url}: download failed ({e})") from None
        atomic_write_bytes(path, payload)


def _jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def gold(answer: Any) -> str:
    """The reference answer as text: ``[22.0]`` -> ``22``, ``["C"]`` -> ``C``, ``3.50`` -> ``3.5``."""
    if isinstance(answer, list):
        if not answer:
            raise ValueError("empty answer list")
        answer = answer[0]
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    text = str(answer).strip()
    try:
        number = float(text.replace(",", ""))
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else repr(number)


def _rows_meta(row: dict[str, Any], target: str) -> dict[str, Any]:
    """The parts of a row the ``llm-adapters`` template needs verbatim: its input (a section of
    its own in finetune.py's template) and its output where stripping changed it."""
    meta: dict[str, Any] = {}
    if row.get("input"):
        meta["input"] = str(row["input"])
    output = row.get("output")
    if output and str(output) != target:
        meta["output"] = str(output)
    return meta


def converter(task: str, letters: bool = False):
    """LLM-Adapters rows -> Examples with positional ids ``<task>-<i>``."""

    def convert(row: dict[str, Any], i: int) -> Example:
        answer = gold(row["answer"])
        if letters and answer.strip("()") not in "ABCDE":
            raise ValueError(f"answer {answer!r} is not a letter A-E")
        answer = answer.strip("()") if letters else answer
        rationale = str(row.get("output") or "").strip()
        shown = f"({answer})" if letters else answer
        target = rationale if rationale else f"The answer is {shown}"
        return Example(
            id=f"{task}-{i}",
            prompt=str(row["instruction"]),
            target=target,
            answer=answer,
            meta={"task": task, **_rows_meta(row, target)},
        )

    return convert


def math_14k(row: dict[str, Any], i: int) -> Example:
    """A math_14k training row (same format; answers are numbers or AQuA letters)."""
    target = str(row["output"]).strip()
    return Example(
        id=f"math14k-{i}",
        prompt=str(row["instruction"]),
        target=target,
        answer=gold(row.get("answer", "")) or None,
        meta={"task": "math_14k", **_rows_meta(row, target)},
    )


# name, folder in the repository, test size of the LLM-Adapters file, letter answers, description
_SETS = (
    ("svamp", "SVAMP", 1000, False, "arithmetic word problems with variations (SVAMP)"),
    ("aqua", "AQuA", 254, True, "algebra word problems, five lettered choices (AQuA-RAT)"),
    ("addsub", "AddSub", 395, False, "addition and subtraction word problems (AddSub)"),
    ("multiarith", "MultiArith", 600, False, "multi-step arithmetic word problems"),
    ("singleeq", "SingleEq", 508, False, "single-equation word problems"),
)

HOW_TO_PROVIDE = (
    "put LLM-Adapters' dataset/{folder}/test.json (a JSON list of instruction/input/output/answer "
    "objects) at $BENCH_DATA_DIR/{task}/test.json or $BENCH_DATA_DIR/{folder}/test.json"
)


def _spec(task: str, folder: str, size: int, letters: bool, description: str) -> TaskSpec:
    return TaskSpec(
        name=task,
        suite="math",
        kind="letter" if letters else "number",
        protocols=("gen",),
        default_protocol="gen",
        test_sources=(
            UrlJsonSource(
                converter(task, letters), size=size, url=f"{RAW}/dataset/{folder}/test.json"
            ),
        ),
        train_sources=(
            UrlJsonSource(
                converter(f"{task}-train", letters), url=f"{RAW}/dataset/{folder}/train.json"
            ),
        ),
        fallback=None,
        format_hint="Answer with the letter of the correct choice." if letters else "",
        metric="accuracy",
        test_size=size,
        description=description + (" (a letter A-E)" if letters else " (last number within 1e-3)"),
        meta={
            "letters": "ABCDE" if letters else None,
            "how_to_provide": HOW_TO_PROVIDE.format(folder=folder, task=task),
            "data_folders": (folder,),
            "package": None,
            # LLM-Adapters scores these sets by the LAST number of the output (the paper's
            # protocol), not by a stated "The answer is N" as GSM8K does.
            "number_rule": "last",
        },
    )


TASKS: tuple[TaskSpec, ...] = tuple(_spec(*row) for row in _SETS)

MATH_14K = UrlJsonSource(math_14k, url=f"{RAW}/ft-training_set/math_14k.json")
