"""Finished evaluations whose scored examples have changed since they were scored.

A record keeps the content hash of the examples each task was scored on (``Evaluation.
scored_hash``). When the task's data changes under a finished cell (a fixed generator, a new
data file, a corrected hidden test), its scores describe examples the task no longer has: the
report would refuse to pair it with new cells, and ``bench run`` would call it finished. So the
runner compares each finished evaluation's hash with the scored set the cell would get now and
re-scores the stale tasks with the saved adapter (no retraining: the training split is not
checked here), dropping their old scores and noting the change in ``config.rescored``.
"""

from __future__ import annotations

import dataclasses
import logging

from harness.ground.errors import BenchError
from harness.run.cell_data import scored_split

log = logging.getLogger(__name__)


_CACHE: dict[tuple, str | None] = {}


def _current_hash(cell, task: str) -> str | None:
    """The content hash of the examples ``task`` would be scored on in ``cell`` now; loaded once
    per distinct scored set (everything the scored split depends on is in the key)."""
    key = (task, cell.task, cell.seed, cell.eval.limit, cell.train.data, cell.train.train_limit)
    if key not in _CACHE:
        try:
            _CACHE[key] = scored_split(cell, task).provenance.content_hash
        except (BenchError, OSError) as e:  # data not reachable now: cannot tell, keep scores
            log.info("cannot check the scored set of %s for %s: %s", task, cell.cell_id, e)
            _CACHE[key] = None
    return _CACHE[key]


def stale_tasks(request, record) -> dict[str, tuple[str, str]]:
    """{task: (recorded hash, current hash)} for the evaluated tasks of ``request`` whose
    finished evaluation was scored on other examples than the task has now."""
    out: dict[str, tuple[str, str]] = {}
    asked = set(request.cell.evaluated_tasks)
    for evaluation in record.evaluations:
        if evaluation.task not in asked or not evaluation.scored_hash:
            continue
        now = _current_hash(request.cell, evaluation.task)
        if now is not None and now != evaluation.scored_hash:
            out[evaluation.task] = (evaluation.scored_hash, now)
    return out


def drop_stale(record, stale: dict[str, tuple[str, str]]):
    """The record without the stale tasks' scores, evaluations and test provenance, with a note
    per task in ``config.rescored`` (so the record says why its scores were rewritten)."""
    if not stale:
        return record
    config = dict(record.config)
    config["rescored"] = [
        *config.get("rescored", []),
        *({"task": t, "old_hash": old, "new_hash": new} for t, (old, new) in stale.items()),
    ]
    return dataclasses.replace(
        record,
        config=config,
        scores=[s for s in record.scores if s.task not in stale],
        evaluations=[e for e in record.evaluations if e.task not in stale],
        provenance=[
            p
            for p in record.provenance
            if not (p.task in stale and p.content_hash == stale[p.task][0])
        ],
    )


def forget_scored_sets() -> None:
    """Drop the remembered hashes (a new plan reads the task data afresh)."""
    _CACHE.clear()
