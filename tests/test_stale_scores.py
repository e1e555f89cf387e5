"""A finished cell whose task's scored examples changed is re-scored with its saved adapter (not
retrained, not left "finished" on examples the task no longer has), and the record says so."""

from __future__ import annotations

import dataclasses

import tasks.synthetic_tasks as synthetic_tasks
from harness.run.executors.inprocess import InProcessExecutor
from harness.run.runner import run_grid
from results.store import load_records
from tests.test_runner import quick_spec, requests_for


def _one_cell(out):
    (record,) = load_records([out])
    return record


def test_a_changed_scored_set_is_rescored_with_the_saved_adapter(small_base, tmp_path, monkeypatch):
    spec = quick_spec(small_base, methods=["lora"])
    out = tmp_path / "run"
    first = run_grid(requests_for(spec), out, {"name": "t"}, InProcessExecutor("cpu"))
    assert first.done == 1
    before = _one_cell(out)
    adapter = next((out / "cells" / before.cell_id / "adapter").glob("*.safetensors"))
    trained_at = adapter.stat().st_mtime_ns

    again = run_grid(requests_for(spec), out, {"name": "t"}, InProcessExecutor("cpu"))
    assert again.done == 0 and again.skipped == 1  # unchanged data: nothing to do

    original = synthetic_tasks.make_split

    def corrected(name, split, n, seed=0):  # the task's test answers change under the cell
        examples = original(name, split, n, seed)
        if split != "test":
            return examples
        return [dataclasses.replace(examples[0], meta={**examples[0].meta, "fixed": 1})] + list(
            examples[1:]
        )

    monkeypatch.setattr(synthetic_tasks, "make_split", corrected)
    third = run_grid(requests_for(spec), out, {"name": "t"}, InProcessExecutor("cpu"))
    assert third.done == 1
    after = _one_cell(out)
    old_hash = before.evaluations[0].scored_hash
    (evaluation,) = after.evaluations
    assert evaluation.scored_hash != old_hash
    assert after.config["rescored"] == [
        {"task": "synth_choice", "old_hash": old_hash, "new_hash": evaluation.scored_hash}
    ]
    assert len(after.scores) == len(before.scores)  # replaced, not appended
    assert {s.scored_set_hash for s in after.scores} == {evaluation.scored_hash}
    assert [p.content_hash for p in after.provenance if p.split == "test"] == [
        evaluation.scored_hash
    ]
    assert adapter.stat().st_mtime_ns == trained_at  # the adapter was not retrained
    assert after.train_curve == before.train_curve

    fourth = run_grid(requests_for(spec), out, {"name": "t"}, InProcessExecutor("cpu"))
    assert fourth.done == 0 and fourth.skipped == 1
