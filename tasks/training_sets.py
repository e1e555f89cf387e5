"""The suite training sets of the paper's protocol: one adapter per suite, trained on one mixed set
and evaluated on every task of the suite (``train.data=suite``).

| suite | training set | from |
|---|---|---|
| commonsense | ``commonsense_170k`` (LLM-Adapters; the eight tasks' training sets mixed) | hub ``zwhe99/commonsense_170k`` |
| math | ``math_14k`` (LLM-Adapters; GSM8K/AQuA/... rationales) | LLM-Adapters ``ft-training_set/math_14k.json`` |
| code | ``codefeedback_python`` (CodeFeedback-Filtered-Instruction, python rows) | hub ``m-a-p/CodeFeedback-Filtered-Instruction`` |

A local file always wins: ``$BENCH_DATA_DIR/<name>/train.jsonl`` (or ``.json``), in the set's own
format (the rows the hub serves) or bench's (``id``, ``prompt``, ``target``). None of them is in
an installed package, so an offline machine without that file cannot train a suite adapter; the
run stops before any training with one line saying where to put the file (``harness/run/preflight.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.ground.errors import BenchError
from tasks.base import LoadedSplit, Provenance, content_hash
from tasks.code_tasks import CODEFEEDBACK
from tasks.commonsense import CS170K
from tasks.llm_adapters import MATH_14K
from tasks.sources import DATA_DIR_ENV, Source, SourceUnavailable, local_path, read_local


@dataclass(frozen=True)
class TrainingSet:
    name: str
    suite: str
    sources: tuple[Source, ...]
    description: str
    row_format: str  # what a local file's rows look like, for the "how to provide" line

    def how_to_provide(self) -> str:
        return (
            f"put it at ${DATA_DIR_ENV}/{self.name}/train.jsonl (rows {self.row_format}, or "
            "id/prompt/target), or run where the hub is reachable, or use --set train.data=task"
        )


TRAINING_SETS: dict[str, TrainingSet] = {
    ts.name: ts
    for ts in (
        TrainingSet(
            "commonsense_170k",
            "commonsense",
            (CS170K,),
            "LLM-Adapters commonsense_170k: the training sets of the commonsense eight, mixed",
            "instruction/input/output/answer",
        ),
        TrainingSet(
            "math_14k",
            "math",
            (MATH_14K,),
            "LLM-Adapters math_14k: GSM8K, AQuA, ... questions with GPT rationales",
            "instruction/input/output/answer",
        ),
        TrainingSet(
            "codefeedback_python",
            "code",
            (CODEFEEDBACK,),
            "CodeFeedback-Filtered-Instruction, python rows",
            "query/answer/lang",
        ),
    )
}
SUITE_TRAINING: dict[str, str] = {ts.suite: ts.name for ts in TRAINING_SETS.values()}


def suite_training_set(suite: str) -> TrainingSet | None:
    name = SUITE_TRAINING.get(suite)
    return TRAINING_SETS[name] if name else None


def get_training_set(name: str) -> TrainingSet:
    if name not in TRAINING_SETS:
        raise BenchError(f"unknown training set {name!r}; valid: {', '.join(TRAINING_SETS)}")
    return TRAINING_SETS[name]


def availability(ts: TrainingSet, data_dir: str | Path | None = None) -> str | None:
    """How the set would be served here without touching the network, or None."""
    if local_path(ts.name, "train", data_dir) is not None:
        return "local"
    for source in ts.sources:
        found = source.availability()
        if found:
            return found
    return None


def load_training_set(
    name: str, *, limit: int | None = None, data_dir: str | Path | None = None
) -> LoadedSplit:
    """The whole training set (first ``limit`` rows), from the local file or the first source
    that serves it; BenchError with the way to provide it otherwise."""
    ts = get_training_set(name)
    path = local_path(ts.name, "train", data_dir)
    skipped: list[str] = []
    if path is not None:
        examples = read_local(path, ts.sources[0].convert)
        source, detail = "local", str(path)
    else:
        for src in ts.sources:
            try:
                examples, detail = src.load()
            except SourceUnavailable as e:
                skipped.append(str(e))
                continue
            source = src.kind
            break
        else:
            raise BenchError(
                f"training set {name} is not available here ({'; '.join(skipped)}); "
                + ts.how_to_provide()
            )
    if limit is not None:
        examples = examples[:limit]
    provenance = Provenance(
        source=source,  # type: ignore[arg-type]
        detail=detail,
        content_hash=content_hash(examples),
        split="train",
        size=len(examples),
        limit=limit,
        note=f"suite training set {name}" + (f"; skipped: {'; '.join(skipped)}" if skipped else ""),
    )
    return LoadedSplit(examples=examples, provenance=provenance)
