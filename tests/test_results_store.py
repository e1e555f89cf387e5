"""Atomic writes, loading run folders, and the DataFrame / Parquet view."""

import json

import numpy as np
import pandas as pd
import pytest

import results.store as store
from harness.ground.errors import BenchError
from results.store import (
    RECORD_NAME,
    atomic_write_text,
    check_schema_compatible,
    load_records,
    read_parquet,
    read_record,
    records_frame,
    write_parquet,
    write_record,
)
from results.testing import make_record, write_run


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name != RECORD_NAME)


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path):
    cell = tmp_path / "cell"
    write_record(cell, make_record(seed=0))
    write_record(cell, make_record(seed=1))
    assert read_record(cell / RECORD_NAME).seed == 1
    assert _leftovers(cell) == []


def test_crash_in_the_serializer_mid_write_keeps_the_old_record(tmp_path, monkeypatch):
    cell = tmp_path / "cell"
    old = make_record(seed=0)
    write_record(cell, old)
    before = (cell / RECORD_NAME).read_bytes()

    new = make_record(seed=1)
    # a numpy value deep in the record makes json call the default hook half-way through
    new.scores[0].per_example[-1]["correct"] = np.float32(1.0)
    written = []
    real_open = store.atomic_open

    def spy_open(path, mode="w", encoding="utf-8"):
        cm = real_open(path, mode, encoding)

        class Wrapped:
            def __enter__(self):
                self.fh = cm.__enter__()
                return self.fh

            def __exit__(self, *exc):
                written.append(self.fh.tell())
                return cm.__exit__(*exc)

        return Wrapped()

    def boom(obj):
        raise RuntimeError("serializer crashed")

    monkeypatch.setattr(store, "atomic_open", spy_open)
    monkeypatch.setattr(store, "_json_default", boom)
    with pytest.raises(RuntimeError, match="serializer crashed"):
        write_record(cell, new)
    assert written and written[0] > 100  # the crash really happened after part of the file
    assert (cell / RECORD_NAME).read_bytes() == before
    assert read_record(cell / RECORD_NAME) == old
    assert _leftovers(cell) == []


def test_atomic_write_text_error_inside_keeps_old_file(tmp_path):
    p = tmp_path / "log.txt"
    atomic_write_text(p, "old")
    with pytest.raises(ValueError), store.atomic_open(p) as fh:
        fh.write("partial")
        raise ValueError("crash")
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["log.txt"]


def test_numpy_values_are_written_as_plain_json(tmp_path):
    rec = make_record()
    rec.scores[0].value = np.float32(0.75)
    rec.config["train"]["lr"] = np.float64(1e-3)
    path = write_record(tmp_path / "c", rec)
    data = json.loads(path.read_text())
    assert data["scores"][0]["value"] == 0.75
    assert data["config"]["train"]["lr"] == 1e-3


def test_load_records_from_run_and_parent_folder(tmp_path):
    recs = [make_record(seed=s) for s in range(3)]
    write_run(tmp_path / "runs" / "a", recs[:2])
    write_run(tmp_path / "runs" / "b", recs[2:])
    assert sorted(r.seed for r in load_records([tmp_path / "runs" / "a"])) == [0, 1]
    assert sorted(r.seed for r in load_records([tmp_path / "runs"])) == [0, 1, 2]


def test_same_cell_in_two_runs_keeps_the_finished_one(tmp_path):
    done = make_record(seed=0)
    failed = make_record(seed=0, status="failed")
    failed.cell_id = done.cell_id
    write_run(tmp_path / "a", [failed])
    write_run(tmp_path / "b", [done])
    (only,) = load_records([tmp_path / "a", tmp_path / "b"])
    assert only.status == "done"


@pytest.mark.parametrize("kind", ["missing", "empty", "foreign"])
def test_bad_folders_fail_with_one_line(tmp_path, kind):
    d = tmp_path / "x"
    if kind != "missing":
        d.mkdir()
    if kind == "foreign":
        (d / "notes.txt").write_text("hello")
        (d / "sub").mkdir()
    with pytest.raises(BenchError) as e:
        load_records([d])
    msg = str(e.value)
    assert "\n" not in msg and str(d) in msg
    assert {"missing": "no such folder", "empty": "empty", "foreign": "no result records"}[
        kind
    ] in msg


def test_other_schema_version_in_output_folder_fails_clearly(tmp_path):
    run = write_run(tmp_path / "run", [make_record(seed=0), make_record(seed=1)])
    path = next((run / "cells").glob("*/record.json"))
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    for fn in (load_records, check_schema_compatible):
        with pytest.raises(BenchError) as e:
            fn([run]) if fn is load_records else fn(run)
        assert "\n" not in str(e.value)
        assert "schema version 99" in str(e.value) and str(run) in str(e.value)
    check_schema_compatible(tmp_path / "does-not-exist-yet")  # a fresh --out is fine


def test_records_frame_has_one_row_per_cell_and_score():
    recs = [
        make_record(
            "lora", "synth_math", 0, {8: [1, 0], 16: [1, 1]}, trainable_params=10, total_params=1000
        ),
        make_record("nara", "synth_math", 0, [1, 1, 1, 0], axes={"nara.c_scale": 0.1}),
        make_record("nara", "synth_code", 1, status="failed", axes={"nara.c_scale": 0.2}),
    ]
    df = records_frame(recs)
    assert len(df) == 4
    lora = df[df["method"] == "lora"].sort_values("steps")
    assert lora["steps"].tolist() == [8, 16]
    assert lora["value"].tolist() == [0.5, 1.0]
    assert lora["trainable_pct"].tolist() == [1.0, 1.0]
    assert pd.isna(lora["nara.c_scale"]).all()
    nara = df[(df["method"] == "nara") & (df["status"] == "done")]
    assert nara["nara.c_scale"].tolist() == [0.1] and nara["value"].tolist() == [0.75]
    failed = df[df["status"] == "failed"].iloc[0]
    assert np.isnan(failed["value"]) and failed["task"] == "synth_code"
    assert failed["error"] == "RuntimeError: boom"
    for col in (
        "method",
        "task",
        "suite",
        "seed",
        "rank",
        "metric",
        "value",
        "train_time_s",
        "tokens_per_s",
        "peak_memory_bytes",
        "time_per_sampling_step_s",
    ):
        assert col in df.columns


def test_frame_parquet_round_trip(tmp_path):
    recs = [
        make_record("nara", "synth_math", 0, [1, 0], axes={"nara.embedding": "mlp"}),
        make_record("nara", "synth_math", 1, [1, 1], axes={"nara.embedding": 0.5}),
        make_record("lora", "synth_math", 0, status="failed"),
    ]
    df = records_frame(recs)
    path = write_parquet(df, tmp_path / "r.parquet")
    back = read_parquet(path)
    assert list(back.columns) == list(df.columns)
    assert len(back) == len(df)
    assert back["value"].tolist()[:2] == df["value"].tolist()[:2]
    assert back["cell_id"].tolist() == df["cell_id"].tolist()
    # mixed-type axis columns are stored as text
    assert [str(v) for v in back["nara.embedding"][:2]] == ["mlp", "0.5"]
    assert pd.isna(back["nara.embedding"].iloc[2])
    assert back["rank"].tolist() == df["rank"].tolist()
