"""How a split is resolved: a local file first, then each declared source in order, then (for
synthetic tasks) the task's own generator; every loaded split carries its provenance."""

from __future__ import annotations

from pathlib import Path

from harness.ground import hub
from harness.ground.errors import BenchError
from harness.ground.hub import hub_offline_by_env
from tasks.base import (
    Example,
    LoadedSplit,
    Provenance,
    Source,
    SourceUnavailable,
    TaskSpec,
    content_hash,
)
from tasks.sources.local import DATA_DIR_ENV, _file_hash, local_path, read_local

SPLIT_NAMES = ("train", "test")


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


def _sources_for(spec: TaskSpec, split: str) -> tuple[Source, ...]:
    return spec.test_sources if split == "test" else spec.train_sources


def _local_file(
    spec: TaskSpec, split: str, path: str | Path | None, data_dir: str | Path | None
) -> Path | None:
    """An explicit path wins over `$BENCH_DATA_DIR/<task>/<split>.jsonl`."""
    if path is not None:
        return Path(path)
    return local_path(spec.name, split, data_dir, spec.meta.get("data_folders", ()))


def _skipped_note(skipped: list[str]) -> str:
    return "skipped: " + "; ".join(skipped) if skipped else ""


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
    local = _local_file(spec, split, path, data_dir)
    if spec.make_split is not None and local is None:
        return _synthetic(spec, split, seed, limit)
    examples, kind, detail, skipped = _resolve_or_fail(
        spec, split, _sources_for(spec, split), local
    )
    return _finish(examples, kind, detail, split, limit, note=_skipped_note(skipped))


def _resolve_or_fail(
    spec: TaskSpec, split: str, sources: tuple[Source, ...], local: Path | None
) -> tuple[list[Example], str, str, list[str]]:
    """:func:`_resolve`, with no source left as one BenchError naming the file to put."""
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
    if local_path(spec.name, split, data_dir, spec.meta.get("data_folders", ())) is not None:
        return "local"
    sources = _sources_for(spec, split)
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
