"""What `bench list tasks` and `bench score` call (the typer wiring lives in harness/cli/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from harness.ground.errors import BenchError
from tasks.base import TaskSpec
from tasks.evaluate import TaskScore, score_generations, score_loglik
from tasks.protocols import get_protocol
from tasks.registry import GROUPS, all_tasks, get_task
from tasks.sources import DEFAULT_SYNTH_SIZES, availability, carve_size, load_split


def _train_size(spec: TaskSpec, train_avail: str) -> str:
    if spec.make_split is not None:
        return str({**DEFAULT_SYNTH_SIZES, **spec.meta.get("sizes", {})}["train"])
    if train_avail.startswith("fallback (disjoint"):
        assert spec.fallback is not None
        sizes = [s.size for s in spec.fallback.sources if s.size]
        return f"{sizes[0]} (fallback)" if sizes else "fallback"
    if train_avail.startswith("fallback (carve") and spec.test_size:
        return f"{carve_size(spec, spec.test_size)} (carved)"
    return "?"


def _test_size(spec: TaskSpec, train_avail: str) -> str:
    if spec.make_split is not None:
        return str({**DEFAULT_SYNTH_SIZES, **spec.meta.get("sizes", {})}["test"])
    if spec.test_size is None:
        return "?"
    if train_avail.startswith("fallback (carve"):
        return f"{spec.test_size} ({spec.test_size - carve_size(spec, spec.test_size)} scored)"
    return str(spec.test_size)


def list_tasks(data_dir: str | Path | None = None) -> Table:
    """Every task with its suite, split sizes, protocols and where its data would come from here.
    Judged without the network: hub data counts only when it is in the local cache."""
    table = Table(title="bench tasks")
    for col in ("task", "suite", "protocols", "test", "train", "test data", "train data"):
        table.add_column(col, overflow="fold")
    for spec in all_tasks():
        train_avail = availability(spec, "train", data_dir)
        test_avail = availability(spec, "test", data_dir)
        suite = spec.suite if spec.suite != "synthetic" else f"synthetic/{spec.group}"
        protocols = ", ".join(
            f"{p}{' (default)' if p == spec.default_protocol and len(spec.protocols) > 1 else ''}"
            for p in spec.protocols
        )
        if spec.meta.get("how_to_provide") and test_avail.startswith(("hub", "missing")):
            test_avail = f"{test_avail}; in no package: local file or download"
        table.add_row(
            spec.name,
            suite,
            protocols,
            _test_size(spec, train_avail),
            _train_size(spec, train_avail),
            test_avail,
            train_avail,
        )
    from tasks.training_sets import TRAINING_SETS
    from tasks.training_sets import availability as set_availability

    sets = "; ".join(
        f"{ts.suite}: {ts.name} ({set_availability(ts, data_dir) or 'not here: hub or local file'})"
        for ts in TRAINING_SETS.values()
    )
    table.caption = (
        "groups: "
        + "; ".join(f"{g} = {'+'.join(m)}" for g, m in GROUPS.items())
        + f"\nsuite training sets (train.data=suite): {sets}"
    )
    return table


def read_predictions(path: Path, known_ids: set[str], key: str) -> dict[str, Any]:
    """{id: value of `key`} from a JSONL file; every bad line is a BenchError naming the file
    and the line number."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: predictions file not found")
    out: dict[str, Any] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise BenchError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict) or "id" not in row or key not in row:
                raise BenchError(f"{path}:{lineno}: expected an object with keys 'id' and {key!r}")
            ex_id = str(row["id"])
            if ex_id not in known_ids:
                raise BenchError(f"{path}:{lineno}: unknown id {ex_id!r} for this task")
            if ex_id in out:
                raise BenchError(f"{path}:{lineno}: duplicate id {ex_id!r}")
            value = row[key]
            ok = isinstance(value, str) or (
                isinstance(value, list) and value and all(isinstance(v, str) for v in value)
            )
            if key == "logliks":
                ok = isinstance(value, list) and all(
                    isinstance(v, int | float) and not isinstance(v, bool) for v in value
                )
            if not ok:
                kind = "a list of numbers" if key == "logliks" else "a string or list of strings"
                raise BenchError(f"{path}:{lineno}: {key!r} must be {kind}")
            out[ex_id] = value
    if not out:
        raise BenchError(f"{path}: no predictions in file")
    return out


def score_predictions(
    task: str,
    predictions: Path,
    protocol: str | None = None,
    *,
    data_dir: str | Path | None = None,
    follows: str = "bench",
) -> tuple[dict[str, float | str], list[dict[str, Any]]]:
    """Score outputs produced elsewhere with exactly the runner's scorer.

    `predictions` is JSONL, one object per line: {"id": ..., "output": "..."} for protocol "gen"
    (or a list of n samples for pass@k), {"id": ..., "logliks": [...]} for "loglik". Examples are
    looked up in the task's full test set; only the predicted ids are scored. Answers are read
    the way the protocol ``follows`` reads them (tasks/protocols.py): rescoring one set of outputs
    under two protocols shows what the answer rule alone changes.
    """
    spec = get_task(task)
    get_protocol(follows)  # a misspelt protocol fails before the predictions are read
    protocol = protocol or spec.default_protocol
    if protocol not in spec.protocols:
        raise BenchError(
            f"task {spec.name!r} has no protocol {protocol!r}; valid: {', '.join(spec.protocols)}"
        )
    examples = load_split(spec, "test", data_dir=data_dir).examples
    by_id = {ex.id: ex for ex in examples}
    key = "logliks" if protocol == "loglik" else "output"
    preds = read_predictions(Path(predictions), set(by_id), key)
    chosen = [by_id[i] for i in preds]
    score: TaskScore
    if protocol == "loglik":
        score = score_loglik(spec, chosen, [preds[ex.id] for ex in chosen])
    else:
        score = score_generations(spec, chosen, [preds[ex.id] for ex in chosen], follows=follows)
    metrics: dict[str, float | str] = {**score.metrics, "n": float(score.n)}
    if score.answer_rule:
        metrics["answer_rule"] = score.answer_rule
    return metrics, score.per_example
