"""The core-visibility note tells apart the three reasons a core method answers like LoRA: both
at the ceiling, a core that hardly moves, and a core that moves without changing the answers."""

from __future__ import annotations

import numpy as np
import pytest

from reports.cores import core_table
from reports.tables import layout
from results.store import examples_frame, load_records, records_frame
from results.testing import make_record, write_run

SCALE = {"nara.core_lr_scale": 5.0}


def _note(tmp_path, monkeypatch, lora: list[int], nara: list[int], effect) -> str:
    """The core table's notes for a LoRA and a NaRA row over two seeds, whose saved NaRA
    adapters have the given core effect at t = 0.1, 0.5, 0.9."""
    recs = []
    for seed in (0, 1):
        recs.append(make_record("lora", "synth_choice_vowel", seed, lora))
        recs.append(
            make_record("nara", "synth_choice_vowel", seed, nara, axes=SCALE, adapter_dir="adapter")
        )
    run = write_run(tmp_path / "run", recs)
    records = load_records([run])
    for r in records:
        if r.method == "nara":
            r.adapter_path().mkdir()
    monkeypatch.setattr(
        "methods.nara.relative_core_effect", lambda path, levels: np.asarray(effect, float)
    )
    frame = records_frame(records)
    table = core_table(records, frame, examples_frame(records), layout(frame, "lora"))
    assert table is not None
    return " ".join(table.notes)


def test_both_at_the_ceiling_is_not_a_core_that_does_not_move(tmp_path, monkeypatch):
    # the demo's faster NaRA core on the vowel family: 100% with a core effect of 10-36%,
    # LoRA at 99.6% (one wrong answer in 250 per seed)
    lora = [1] * 249 + [0]
    note = _note(tmp_path, monkeypatch, lora, [1] * 250, [0.10, 0.24, 0.36])
    assert "at the ceiling" in note
    assert "synth_choice_vowel (both right on 99.6%)" in note
    assert "hardly moves" not in note


def test_a_core_that_hardly_moves_is_said_so(tmp_path, monkeypatch):
    half = [1, 0] * 100  # the same answers at 50%: no ceiling
    note = _note(tmp_path, monkeypatch, half, half, [0.02, 0.05, 0.09])
    assert "hardly moves" in note and "core effect up to 9.0%" in note
    assert "ceiling" not in note
    assert "--set nara.core_lr_scale=5" in note


def test_a_moving_core_with_the_same_answers_is_said_so(tmp_path, monkeypatch):
    half = [1, 0] * 100
    note = _note(tmp_path, monkeypatch, half, half, [0.10, 0.24, 0.36])
    assert "core moves, yet the answers stay the same" in note
    assert "hardly moves" not in note and "ceiling" not in note


@pytest.mark.parametrize("nara", [[1, 1, 0, 0] * 50, [0, 1] * 100])
def test_no_note_when_the_answers_differ(tmp_path, monkeypatch, nara):
    note = _note(tmp_path, monkeypatch, [1, 0] * 100, nara, [0.02, 0.05, 0.09])
    assert "Same predictions" not in note
