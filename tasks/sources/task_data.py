"""A task's training split and scored split together, guaranteed disjoint: when the training set
cannot be reached, a labelled fallback (a disjoint split, or a seeded carve out of the eval set
that is then removed from the scored part)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from harness.ground.errors import BenchError
from tasks.base import Example, LoadedSplit, SourceUnavailable, TaskSpec
from tasks.sources.local import DATA_DIR_ENV
from tasks.sources.resolve import (
    _finish,
    _local_file,
    _resolve,
    _resolve_or_fail,
    _skipped_note,
    load_split,
)


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
    local_train = _local_file(spec, "train", train_path, data_dir)
    local_test = _local_file(spec, "test", test_path, data_dir)
    test_examples, test_kind, test_detail, test_skipped = _resolve_or_fail(
        spec, "test", spec.test_sources, local_test
    )
    try:
        train_examples, kind, detail, skipped = _resolve(
            spec, "train", spec.train_sources, local_train
        )
        train = _finish(
            train_examples, kind, detail, "train", train_limit, note=_skipped_note(skipped)
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
