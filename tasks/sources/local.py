"""Where a split is read from a local file: `$BENCH_DATA_DIR/<task>/<split>.jsonl` or a path."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.ground.errors import BenchError
from tasks.base import Convert, Example, example_from_dict

DATA_DIR_ENV = "BENCH_DATA_DIR"


def local_path(
    task: str, split: str, data_dir: str | Path | None = None, folders: tuple[str, ...] = ()
) -> Path | None:
    """`<data_dir or $BENCH_DATA_DIR>/<task>/<split>.jsonl` (or `.json`) when it exists, else the
    same under the task's other folder names (`folders`: LLM-Adapters' `dataset/<Name>/`, so that
    `$BENCH_DATA_DIR` may be a copy of that folder)."""
    base = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if not base:
        return None
    for folder in (task, *folders):
        for ext in (".jsonl", ".json"):
            p = Path(base) / folder / f"{split}{ext}"
            if p.is_file():
                return p
    return None


def read_local(path: Path, convert: Convert | None) -> list[Example]:
    """Read a user's JSONL (one object per line) or JSON (a list of objects) file.

    Rows with `id`, `prompt` and `target` are taken as Examples as they are; other rows go through
    the task's converter for that split (the hub format, e.g. commonsense_170k's
    instruction/input/output/answer). Any bad row raises BenchError naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: local data file not found")
    text = path.read_text(encoding="utf-8")
    rows: list[tuple[int, Any]] = []
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BenchError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(data, list):
            raise BenchError(f"{path}:1: expected a JSON list of objects")
        rows = [(i + 1, r) for i, r in enumerate(data)]  # item number stands in for the line
    else:
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((lineno, json.loads(line)))
            except json.JSONDecodeError as e:
                raise BenchError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
    examples: list[Example] = []
    ids: set[str] = set()
    for index, (lineno, row) in enumerate(rows):
        if not isinstance(row, dict):
            raise BenchError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        try:
            if {"id", "prompt", "target"} <= row.keys():
                ex = example_from_dict(row)
            elif convert is not None:
                ex = convert(row, index)
            else:
                raise KeyError("id/prompt/target")
        except (KeyError, ValueError, TypeError, IndexError, SyntaxError) as e:
            raise BenchError(
                f"{path}:{lineno}: row does not fit this task ({type(e).__name__}: {e}); "
                "expected keys id, prompt, target or the task's hub format"
            ) from None
        if ex is None:
            continue
        if ex.id in ids:
            raise BenchError(f"{path}:{lineno}: duplicate id {ex.id!r}")
        ids.add(ex.id)
        examples.append(ex)
    if not examples:
        raise BenchError(f"{path}: no examples in file")
    return examples


def _file_hash(path: Path) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
