"""The paper's protocol: one adapter per training set, scored on a list of tasks.

Expansion (suite -> one cell scoring N tasks; task -> N cells), presets with --model, the data
check before training, the LLM-Adapters math sets from local files, and a whole tiny run in suite
mode: one record with one row per evaluated task, resume when everything is done, a task added
later scored from the saved adapter, an evaluation interrupted half-way finished without
retraining.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from harness.ground.errors import BenchError
from harness.run.cell import CellRequest
from harness.run.executors.inprocess import InProcessExecutor
from harness.run.grid import make_grid, sampling_steps
from harness.run.runner import run_grid
from results.store import load_records, records_frame
from tasks.evaluate import score_generations
from tasks.registry import get_task
from tasks.sources import load_split

REAL = "llada-8b-instruct"


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Nothing is reachable and no data folder is set, as on the CI machine."""
    monkeypatch.setenv("BENCH_HUB", "0")
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))


def _cells(spec: dict):
    return make_grid(spec).cells()


# -- expansion ---------------------------------------------------------------------------------
def test_suite_mode_trains_one_adapter_per_suite_and_scores_every_task(no_network):
    cells = _cells({"model": REAL, "methods": "lora,nara", "tasks": "gsm8k,arc,svamp"})
    assert [(c.method, c.task, c.evaluated_tasks) for c in cells] == [
        ("lora", "math_14k", ("gsm8k", "svamp")),
        ("nara", "math_14k", ("gsm8k", "svamp")),
        ("lora", "commonsense_170k", ("arc_e", "arc_c")),
        ("nara", "commonsense_170k", ("arc_e", "arc_c")),
    ]
    assert all(c.train.data == "suite" for c in cells)
    assert cells[0].cell_id.startswith("lora-math_14k-r32-s0-")


def test_task_mode_trains_one_adapter_per_task(no_network):
    spec = {"model": REAL, "methods": "lora", "tasks": "gsm8k,arc", "set": {"train.data": ["task"]}}
    cells = _cells(spec)
    assert [(c.task, c.evaluated_tasks) for c in cells] == [
        ("gsm8k", ("gsm8k",)),
        ("arc_e", ("arc_e",)),
        ("arc_c", ("arc_c",)),
    ]
    assert {c.train.data for c in cells} == {"task"}


def test_both_modes_as_an_axis_give_both_kinds_of_cell(no_network):
    spec = {
        "model": REAL,
        "methods": "lora",
        "tasks": "arc",
        "set": {"train.data": ["suite", "task"]},
    }
    cells = _cells(spec)
    assert sorted((c.task, len(c.evaluated_tasks)) for c in cells) == [
        ("arc_c", 1),
        ("arc_e", 1),
        ("commonsense_170k", 2),
    ]


def test_the_cell_id_names_the_training_data_and_ignores_the_task_list(no_network):
    one = _cells({"model": REAL, "methods": "lora", "tasks": "gsm8k"})
    two = _cells({"model": REAL, "methods": "lora", "tasks": "gsm8k,svamp"})
    assert one[0].cell_id == two[0].cell_id  # adding a task reuses the adapter
    other = _cells({"model": REAL, "methods": "lora", "tasks": "arc_e"})
    assert other[0].cell_id != one[0].cell_id


def test_tiny_model_trains_per_task_when_no_suite_set_is_here_and_says_so(no_network):
    cells = _cells({"methods": "lora", "tasks": "gsm8k,arc"})
    assert [c.task for c in cells] == ["gsm8k", "arc_e", "arc_c"]
    assert {c.train.data for c in cells} == {"task"}
    assert all(
        "math_14k" in c.train_data_note or "commonsense_170k" in c.train_data_note for c in cells
    )
    demo = _cells({})
    assert {c.train.data for c in demo} == {"task"} and not any(c.train_data_note for c in demo)


def test_tiny_model_uses_the_suite_set_when_a_local_file_exists(no_network, tmp_path, monkeypatch):
    _write_jsonl(tmp_path / "data" / "math_14k" / "train.jsonl", _math_rows(4))
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    cells = _cells({"methods": "lora", "tasks": "gsm8k,math500"})
    assert [(c.task, c.evaluated_tasks, c.train.data) for c in cells] == [
        ("math_14k", ("gsm8k", "math500"), "suite")
    ]
    assert "found (local)" in cells[0].train_data_note


def test_suite_mode_for_synthetic_tasks_is_one_clear_error(no_network):
    with pytest.raises(BenchError, match="synth_math .* has no suite training set"):
        _cells({"tasks": "synth_math", "set": {"train.data": ["suite"]}})
    with pytest.raises(BenchError, match="train.data must be one of suite, task, auto"):
        _cells({"tasks": "synth_math", "set": {"train.data": ["everything"]}})


# -- presets with --model ------------------------------------------------------------------------
def test_preset_with_a_real_model_expands_to_the_release_protocol(no_network):
    from harness.cli import _grid_spec
    from harness.models.loader import MODEL_SPECS
    from harness.models.registry import get_family

    spec, name = _grid_spec(None, None, REAL, None, None, None, None, None, "nara-main", None)
    assert name == f"nara-main_{REAL}"
    grid = make_grid(spec)
    cells = grid.cells()
    assert len(cells) == 4 * 3 * 3  # methods x suites x seeds: one adapter per suite
    by_suite = {c.suite: c for c in cells if c.method == "nara" and c.seed == 0}
    assert {s: c.task for s, c in by_suite.items()} == {
        "commonsense": "commonsense_170k",
        "math": "math_14k",
        "code": "codefeedback_python",
    }
    assert by_suite["math"].evaluated_tasks == (
        "gsm8k", "svamp", "aqua", "addsub", "multiarith", "singleeq", "math500",
    )  # fmt: skip
    assert len(by_suite["commonsense"].evaluated_tasks) == 8
    assert get_family(MODEL_SPECS[REAL].family).default_targets == (
        "q_proj", "k_proj", "v_proj", "attn_out",
    )  # fmt: skip
    release = {"commonsense": (1e-5, 1.0), "math": (1e-4, 10.0), "code": (1e-4, 1.0)}
    for suite, cell in by_suite.items():
        assert cell.rank == 32 and cell.method_config["target_modules"] is None
        assert cell.method_config["c_scale"] == 0.1
        t = cell.train
        assert (t.lr, t.epochs) == release[suite]
        assert t.masking == "exact" and t.data == "suite" and t.max_length == 512
        assert t.batch_size * t.grad_accum == 32
        assert (t.beta1, t.beta2, t.weight_decay, t.warmup_ratio) == (0.9, 0.95, 0.05, 0.05)
        assert (t.val_examples, t.val_every, t.grad_clip) == (128, 64, 1.0)
        e = cell.eval
        assert (e.temperature, e.remasking) == (0.0, "low_confidence")
    math_cell = by_suite["math"]
    assert (math_cell.eval.gen_length, math_cell.eval.block_length) == (256, 8)
    assert sampling_steps(grid, math_cell) == [256]


def test_preset_without_model_keeps_the_tiny_version(no_network):
    from harness.cli import _grid_spec

    spec, name = _grid_spec(None, None, None, None, None, None, None, None, "nara-main", None)
    cells = make_grid(spec).cells()
    assert name == "nara-main" and spec["model"] == "tiny"
    assert {c.task for c in cells} == {"synth_math", "synth_choice", "synth_code"}
    assert {c.rank for c in cells} == {8} and {c.train.masking for c in cells} == {"bernoulli"}


def test_rank_sweep_and_steps_presets_have_real_versions(no_network):
    from harness.cli import _grid_spec

    spec, _ = _grid_spec(None, None, REAL, None, None, None, None, None, "rank-sweep", None)
    assert spec["ranks"] == [8, 16, 32, 64]
    spec, _ = _grid_spec(None, None, REAL, None, None, None, None, None, "steps-scaling", None)
    assert spec["steps"] == [64, 128, 256]


# -- data check before training ----------------------------------------------------------------------
def run_cli(args, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setattr(sys, "argv", ["bench", *args])
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_missing_math_sets_stop_before_training_with_one_line(
    no_network, tmp_path, monkeypatch, capsys
):
    import harness.run.cell

    monkeypatch.setattr(harness.run.cell, "run_cell", _must_not_run)
    out = tmp_path / "run"
    code, _, err = run_cli(
        ["run", "--methods", "lora", "--tasks", "svamp", "--out", str(out)], monkeypatch, capsys
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "$BENCH_DATA_DIR/svamp/test.json" in err and "Traceback" not in err
    assert not out.exists()


def test_missing_suite_training_set_stops_before_loading_the_model(
    no_network, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    code, _, err = run_cli(
        ["run", "--model", REAL, "--methods", "lora", "--tasks", "gsm8k", "--out", str(out)],
        monkeypatch,
        capsys,
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "math_14k" in err and "$BENCH_DATA_DIR/math_14k/train.jsonl" in err
    assert not out.exists()


def test_dry_run_lists_training_data_and_evaluated_tasks(no_network, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "250")
    code, stdout, _ = run_cli(
        ["run", "--model", REAL, "--methods", "lora", "--tasks", "gsm8k,svamp", "--dry-run"],
        monkeypatch,
        capsys,
    )
    assert code == 0
    assert "math_14k (suite)" in stdout and "gsm8k,svamp" in stdout
    assert "suite training set math_14k is not available here" in stdout


def _must_not_run(*args, **kwargs):
    raise AssertionError("a cell ran although data was missing")


# -- the new math sets from local files --------------------------------------------------------
def _write_json(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def _write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _adapters_rows(answers, letters=False):
    """Rows as LLM-Adapters' dataset/<Name>/test.json has them (answers sometimes in a list)."""
    rows = []
    for i, answer in enumerate(answers):
        question = f"Tom has {i + 3} apples and buys {i + 2} more. How many now?"
        if letters:
            question += " Answer Choices: (A) 1 (B) 2 (C) 3 (D) 4 (E) 5"
        rows.append(
            {
                "instruction": question,
                "input": "",
                "output": f"So it is {answer}.",
                "answer": answer,
            }
        )
    return rows


def _math_rows(n):
    return [
        {"id": f"m{i}", "prompt": f"{i} + {i} = ?", "target": f"The answer is {2 * i}"}
        for i in range(n)
    ]


def test_llm_adapters_number_sets_load_locally_and_score_last_number(no_network, tmp_path):
    path = _write_json(tmp_path / "svamp.json", _adapters_rows([[22.0], 3.5, "1,200", [7.0]]))
    examples = load_split(get_task("svamp"), "test", path=path).examples
    assert [e.answer for e in examples] == ["22", "3.5", "1200", "7"]
    assert [e.id for e in examples] == ["svamp-0", "svamp-1", "svamp-2", "svamp-3"]
    outputs = [
        "14 + 8 = 22. The answer is 22.0004",  # last number within 1e-3
        "The answer is 3.5 apples",
        "1 + 1 = 2, so 1,200",
        "The answer is 7.01",  # off by more than 1e-3
    ]
    score = score_generations(get_task("svamp"), examples, outputs)
    assert [r["correct"] for r in score.per_example] == [True, True, True, False]
    assert score.value == pytest.approx(0.75)


def test_aqua_loads_locally_and_scores_the_first_letter(no_network, tmp_path):
    path = _write_json(tmp_path / "aqua.json", _adapters_rows([["C"], "A", "E"], letters=True))
    examples = load_split(get_task("aqua"), "test", path=path).examples
    assert [e.answer for e in examples] == ["C", "A", "E"]
    outputs = ["(C) because 3 apples, not (A)", "The answer is B", "E"]
    score = score_generations(get_task("aqua"), examples, outputs)
    assert [r["correct"] for r in score.per_example] == [True, False, True]


def test_every_new_set_reads_bench_data_dir_and_says_it_is_in_no_package(
    no_network, tmp_path, monkeypatch
):
    from tasks.cli import list_tasks

    data = tmp_path / "data"
    for name in ("svamp", "addsub", "multiarith", "singleeq"):
        _write_json(data / name / "test.json", _adapters_rows([1, 2]))
    _write_jsonl(
        data / "aqua" / "test.jsonl", [{"id": "q1", "prompt": "?", "target": "(B)", "answer": "B"}]
    )
    for name in ("svamp", "addsub", "multiarith", "singleeq", "aqua"):
        split = load_split(get_task(name), "test", data_dir=data)
        assert split.provenance.source == "local" and split.examples
    table = list_tasks()
    rows = dict(zip(table.columns[0]._cells, table.columns[5]._cells, strict=True))
    assert "in no package" in rows["svamp"]
    assert rows["gsm8k"] == "package"


# -- a whole tiny run in suite mode ------------------------------------------------------------------
def _suite_spec(base: Path, tasks: str) -> dict:
    return {
        "model": str(base),
        "methods": ["lora"],
        "tasks": tasks,
        "seeds": [0],
        "set": {
            "train.data": ["suite"],
            "train.steps": [2],
            "train.batch_size": [2],
            "train.val_every": [2],
            "train.val_examples": [2],
            "train.max_length": [64],
            "eval.gen_length": [4],
            "eval.block_length": [4],
        },
        "steps": [2],
        "limit": 3,
    }


def _run(spec: dict, out: Path):
    grid = make_grid(spec)
    requests = [CellRequest(c, sampling_steps(grid, c)) for c in grid.cells()]
    return run_grid(requests, out, {**grid.to_spec(), "name": "t"}, InProcessExecutor("cpu"))


@pytest.fixture
def suite_data(no_network, tmp_path, monkeypatch) -> Path:
    data = tmp_path / "data"
    _write_jsonl(data / "math_14k" / "train.jsonl", _math_rows(8))
    for name in ("svamp", "addsub", "multiarith"):
        _write_json(data / name / "test.json", _adapters_rows([1, 2, 3, 4]))
    monkeypatch.setenv("BENCH_DATA_DIR", str(data))
    return data


def test_suite_cell_records_one_row_per_task_and_resumes(
    small_base, suite_data, tmp_path, monkeypatch
):
    import harness.run.cell

    out = tmp_path / "run"
    summary = _run(_suite_spec(small_base, "svamp,addsub"), out)
    assert summary.done == 1 and not summary.failed
    (record,) = load_records([out])
    assert record.task == "math_14k" and record.eval_tasks == ["svamp", "addsub"]
    assert [e.task for e in record.evaluations] == ["svamp", "addsub"]
    tests = {p.task: p for p in record.provenance if p.split == "test"}
    for ev in record.evaluations:
        assert ev.scored_hash == tests[ev.task].content_hash and ev.n == 3
        assert ev.predictions == [f"predictions-{ev.task}-steps2.jsonl"]
        assert (out / "cells" / record.cell_id / ev.predictions[0]).is_file()
    train = [p for p in record.provenance if p.split == "train"]
    assert [(p.task, p.source) for p in train] == [("math_14k", "local")]
    frame = records_frame([record])
    primary = frame[frame["metric_index"] == 0]
    assert sorted(primary["task"]) == ["addsub", "svamp"]
    assert set(primary["train_data"]) == {"math_14k (suite)"}
    assert set(primary["cell_task"]) == {"math_14k"}

    from reports.build import build_report

    report = build_report([out], tmp_path / "report", baseline="lora").read_text()
    assert "svamp" in report and "addsub" in report
    assert "math_14k (suite) -> addsub, svamp" in report

    # everything done: a rerun trains and evaluates nothing
    monkeypatch.setattr(harness.run.cell, "train_adapter", _must_not_run)
    monkeypatch.setattr(harness.run.cell, "evaluate", _must_not_run)
    again = _run(_suite_spec(small_base, "svamp,addsub"), out)
    assert again.skipped == 1 and again.done == 0

    # a task added later: the saved adapter is scored on it alone
    monkeypatch.undo()
    monkeypatch.setenv("BENCH_HUB", "0")
    monkeypatch.setenv("BENCH_DATA_DIR", str(suite_data))
    monkeypatch.setattr(harness.run.cell, "train_adapter", _must_not_run)
    seen = _record_evaluated_tasks(monkeypatch)
    more = _run(_suite_spec(small_base, "svamp,addsub,multiarith"), out)
    assert more.done == 1 and not more.failed and seen == ["multiarith"]
    (extended,) = load_records([out])
    assert extended.cell_id == record.cell_id
    assert extended.eval_tasks == ["svamp", "addsub", "multiarith"]
    old = {(s.task, s.metric): s for s in record.scores}
    for s in extended.scores:
        if s.task != "multiarith":
            assert s == old[(s.task, s.metric)]
    assert {s.task for s in extended.scores} == {"svamp", "addsub", "multiarith"}


def _record_evaluated_tasks(monkeypatch) -> list[str]:
    import harness.run.cell

    seen: list[str] = []
    real = harness.run.cell.evaluate

    def spy(dlm, spec, *args, **kwargs):
        seen.append(spec.name)
        return real(dlm, spec, *args, **kwargs)

    monkeypatch.setattr(harness.run.cell, "evaluate", spy)
    return seen


def test_an_interrupted_evaluation_finishes_only_the_missing_tasks(
    small_base, suite_data, tmp_path, monkeypatch
):
    import harness.run.cell

    out = tmp_path / "run"
    real_split = harness.run.cell.scored_split

    def killed_at_addsub(cell, task):
        if task == "addsub":
            raise KeyboardInterrupt  # like a kill: nothing catches it, the record stays "running"
        return real_split(cell, task)

    monkeypatch.setattr(harness.run.cell, "scored_split", killed_at_addsub)
    with pytest.raises(KeyboardInterrupt):
        _run(_suite_spec(small_base, "svamp,addsub"), out)
    (partial,) = load_records([out])
    assert partial.status == "running" and partial.config["trained"]
    assert {s.task for s in partial.scores} == {"svamp"}
    frame = records_frame([partial])
    assert sorted(frame["task"].unique()) == ["addsub", "svamp"]  # addsub visible as unscored
    assert math.isnan(frame[frame["task"] == "addsub"]["value"].iloc[0])

    monkeypatch.setattr(harness.run.cell, "scored_split", real_split)
    monkeypatch.setattr(harness.run.cell, "train_adapter", _must_not_run)
    seen = _record_evaluated_tasks(monkeypatch)
    summary = _run(_suite_spec(small_base, "svamp,addsub"), out)
    assert summary.done == 1 and not summary.failed and seen == ["addsub"]
    (done,) = load_records([out])
    assert done.status == "done" and {s.task for s in done.scores} == {"svamp", "addsub"}
    svamp = [s for s in done.scores if s.task == "svamp"]
    assert svamp == [s for s in partial.scores if s.task == "svamp"]
    assert done.costs.train_time_s == partial.costs.train_time_s


def test_version_1_records_are_read_as_one_task_cells(tmp_path):
    from results.schema import SCHEMA_VERSION
    from results.store import read_record
    from results.testing import make_record

    data = make_record(task="synth_math").to_dict()
    data["schema_version"] = 1
    del data["evaluations"]
    data["config"].pop("eval_tasks", None)
    path = _write_json(tmp_path / "cells" / "c" / "record.json", data)
    record = read_record(path)
    assert record.schema_version == SCHEMA_VERSION and record.eval_tasks == ["synth_math"]
    assert record.train_data == "synth_math (task)"
    frame = records_frame([record])
    assert list(frame["task"].unique()) == ["synth_math"] and frame["value"].notna().all()
