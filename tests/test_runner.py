"""The runner: grid expansion, dry runs, an end-to-end tiny grid, resume after SIGKILL, isolation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.ground.errors import BenchError
from harness.run.cell import CellRequest
from harness.run.executors.inprocess import InProcessExecutor
from harness.run.grid import make_grid, parse_set, sampling_steps
from harness.run.runner import run_grid
from reports.presets import load_preset
from results.store import load_records

ROOT = Path(__file__).resolve().parents[1]


def quick_spec(base: Path, **extra) -> dict:
    spec = {
        "model": str(base),
        "methods": ["lora", "nara"],
        "tasks": ["synth_choice"],
        "seeds": [0],
        "set": {"train.steps": [3], "train.val_every": [2], "train.val_examples": [8]},
        "steps": [4],
        "limit": 6,
    }
    spec.update(extra)
    return spec


def requests_for(spec: dict) -> list[CellRequest]:
    grid = make_grid(spec)
    return [CellRequest(c, sampling_steps(grid, c)) for c in grid.cells()]


def test_grid_expansion_and_stable_ids():
    spec = {
        "methods": "lora,nara",
        "tasks": "synth_math,synth_code",
        "seeds": "0,1",
        "set": {"nara.c_scale": [0.05, 0.1], "train.lr": [1e-3]},
    }
    cells = make_grid(spec).cells()
    # lora: 2 tasks x 2 seeds; nara: 2 tasks x 2 seeds x 2 c_scale
    assert len(cells) == 4 + 8
    assert len({c.cell_id for c in cells}) == 12
    again = make_grid(spec).cells()
    assert [c.cell_id for c in cells] == [c.cell_id for c in again]
    nara = [c for c in cells if c.method == "nara"]
    assert {c.axes["nara.c_scale"] for c in nara} == {0.05, 0.1}
    assert all("nara.c_scale" not in c.axes for c in cells if c.method == "lora")
    assert all(c.train.lr == 1e-3 for c in cells)


def test_group_names_expand_and_user_example_resolves():
    cells = make_grid({"methods": "lora,nara", "tasks": "gsm8k,arc"}).cells()
    assert sorted({c.task for c in cells}) == ["arc_c", "arc_e", "gsm8k"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"methods": "lora,bogus"}, "valid methods are base, lora, dora, static_core, nara"),
        ({"tasks": "nope"}, "unknown task"),
        ({"methods": ""}, "methods axis is empty"),
        ({"set": {"nara.nonsense": [1]}}, "unknown field"),
        ({"set": {"train.nonsense": [1]}}, "valid train fields"),
        ({"set": {"wat.x": [1]}}, "unknown --set section"),
        ({"ranks": "0"}, "rank must be a positive integer"),
        ({"colour": "blue"}, "unknown grid key"),
    ],
)
def test_bad_grids_fail_before_any_work(spec, message):
    with pytest.raises(BenchError, match=message):
        make_grid(spec).cells()


def test_malformed_set_fails():
    with pytest.raises(BenchError, match="malformed --set"):
        parse_set(["nara.c_scale"])
    assert parse_set(["nara.hidden_sizes=[8,8],[16,16]"]) == {
        "nara.hidden_sizes": ((8, 8), (16, 16))
    }
    assert parse_set(["train.lr=1e-4,3e-4"]) == {"train.lr": (1e-4, 3e-4)}


def run_cli(args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    from harness.cli import main

    monkeypatch.setattr(sys, "argv", ["bench", *args])
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_dry_run_runs_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(
        [
            "run",
            "--methods",
            "lora,nara",
            "--tasks",
            "synth_math",
            "--seeds",
            "0,1",
            "--dry-run",
            "--out",
            str(out),
        ],
        monkeypatch,
        capsys,
    )
    assert code == 0 and "4 cells" in stdout and "nothing was run" in stdout
    assert "synth_math: 200 examples x 2 seeds = 400 pairs; MDE" in " ".join(stdout.split())
    assert not out.exists()


def test_plain_bench_run_is_the_demo_preset(monkeypatch, capsys):
    code, stdout, _ = run_cli(["run", "--dry-run"], monkeypatch, capsys)
    demo = load_preset("demo")
    assert code == 0 and "runs/demo" in stdout
    assert demo["tasks"] == ["synth_math_unseen", "synth_choice_vowel", "synth_code_slice"]
    assert "base" in demo["methods"]
    text = " ".join(stdout.split())
    for task in demo["tasks"]:
        assert f"{task}: " in text and "MDE" in text


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    bad_yaml = tmp_path / "grid.yaml"
    bad_yaml.write_text("methods: [lora\n")
    for args, message in [
        (["run", "--methods", "lora,qlora", "--dry-run"], "valid methods"),
        (["run", "--set", "nara.c_scale", "--dry-run"], "malformed --set"),
        (["run", "--config", str(bad_yaml), "--dry-run"], "malformed YAML"),
        (["run", "--preset", "nope", "--dry-run"], "unknown preset"),
        (["run", "--model", "llama-x", "--dry-run"], "unknown model 'llama-x'"),
        (["run", "--dry-run", "--devices", "tpu"], "unknown device"),
        (["report", "--runs", str(tmp_path / "missing")], "no such"),
    ]:
        code, _, err = run_cli(args, monkeypatch, capsys)
        assert code == 2, args
        assert message in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err


def test_end_to_end_tiny_grid_writes_valid_records(small_base, tmp_path):
    out = tmp_path / "run"
    summary = run_grid(
        requests_for(quick_spec(small_base)), out, {"name": "t"}, InProcessExecutor("cpu")
    )
    assert summary.done == 2 and not summary.failed
    records = load_records([out])
    assert {r.config["method"] for r in records} == {"lora", "nara"}
    for record in records:
        assert record.status == "done"
        score = record.scores[0]
        assert score.steps == 4 and score.n == 6
        correct = [row["correct"] for row in score.per_example]
        assert score.value == pytest.approx(sum(correct) / len(correct))
        name = f"predictions-{record.task}-steps4.jsonl"
        assert record.evaluations[0].predictions == [name]
        predictions = (out / "cells" / record.cell_id / name).read_text()
        ids = [json.loads(line)["id"] for line in predictions.splitlines()]
        assert ids == [row["id"] for row in score.per_example]
        assert len(record.val_loss_bins) == 10 and record.train_curve
        assert record.costs.trainable_params > 0 and record.costs.adapter_bytes > 0
        assert (out / "cells" / record.cell_id / "adapter" / "adapter_config.json").is_file()
    nara = next(r for r in records if r.config["method"] == "nara")
    lora = next(r for r in records if r.config["method"] == "lora")
    assert nara.costs.trainable_params > lora.costs.trainable_params
    # a rerun skips both finished cells
    again = run_grid(
        requests_for(quick_spec(small_base)), out, {"name": "t"}, InProcessExecutor("cpu")
    )
    assert again.skipped == 2 and again.done == 0


def test_a_raising_cell_is_recorded_failed_and_the_grid_continues(
    small_base, tmp_path, monkeypatch
):
    import torch

    import harness.run.executors.worker as runner

    real = runner.run_cell

    def flaky(request, cell_dir, device, monitor, checkpoint=None):
        if request.cell.method == "lora":
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(request, cell_dir, device, monitor)

    monkeypatch.setattr(runner, "run_cell", flaky)
    out = tmp_path / "run"
    summary = run_grid(
        requests_for(quick_spec(small_base)), out, {"name": "t"}, InProcessExecutor("cpu")
    )
    assert summary.done == 1 and len(summary.failed) == 1 and "out of memory" in summary.failed[0]
    statuses = {r.config["method"]: r for r in load_records([out])}
    assert statuses["lora"].status == "failed" and "OutOfMemoryError" in statuses["lora"].error
    assert statuses["nara"].status == "done"
    # failed cells are skipped on a plain rerun, retried with retry_failed
    monkeypatch.setattr(runner, "run_cell", real)
    assert (
        run_grid(
            requests_for(quick_spec(small_base)), out, {"name": "t"}, InProcessExecutor("cpu")
        ).skipped
        == 2
    )
    retried = run_grid(
        requests_for(quick_spec(small_base)),
        out,
        {"name": "t"},
        InProcessExecutor("cpu"),
        retry_failed=True,
    )
    assert retried.done == 1 and {r.status for r in load_records([out])} == {"done"}


def test_sigkill_mid_grid_then_rerun_finishes_each_cell_once(small_base, tmp_path):
    out = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--model",
        str(small_base),
        "--methods",
        "lora,static_core,nara",
        "--tasks",
        "synth_choice",
        "--limit",
        "6",
        "--steps",
        "4",
        "--set",
        "train.steps=3",
        "--set",
        "train.val_examples=8",
        "--out",
        str(out),
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 240
    first_done: dict[str, bytes] = {}
    while time.time() < deadline and proc.poll() is None:
        for path in out.glob("cells/*/record.json"):
            if b'"status": "done"' in path.read_bytes():
                first_done[str(path)] = path.read_bytes()
        if first_done:
            break
        time.sleep(0.2)
    assert first_done, "no cell finished before the deadline"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before = {p: b for p, b in first_done.items()}
    rerun = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    records = load_records([out])
    assert len(records) == 3 and all(r.status == "done" for r in records)
    assert len({r.cell_id for r in records}) == 3
    for path, content in finished_before.items():
        assert Path(path).read_bytes() == content  # finished cells were not touched
    assert not list(out.glob("cells/*/*.tmp*")) and not list(out.glob("cells/*/.*.tmp"))


def test_new_step_counts_reuse_the_trained_adapter(small_base, tmp_path):
    out = tmp_path / "run"
    spec = quick_spec(small_base, methods=["nara"])
    run_grid(requests_for(spec), out, {"name": "t"}, InProcessExecutor("cpu"))
    (record,) = load_records([out])
    adapter = out / "cells" / record.cell_id / "adapter" / "adapter_model.safetensors"
    before = adapter.stat().st_mtime_ns
    summary = run_grid(
        requests_for({**spec, "steps": [4, 8]}), out, {"name": "t"}, InProcessExecutor("cpu")
    )
    assert summary.done == 1
    (record,) = load_records([out])
    assert sorted({s.steps for s in record.scores}) == [4, 8]
    assert adapter.stat().st_mtime_ns == before  # not retrained
    assert record.train_curve and record.val_loss_bins


@pytest.mark.parametrize(
    "preset",
    [
        "nara-main",
        "nara-conditioning",
        "nara-embedding",
        "nara-cscale",
        "rank-sweep",
        "lambda-definition",
        "steps-scaling",
    ],
)
def test_every_preset_expands_into_valid_cells(preset):
    from reports.presets import for_model

    for model in (None, "llada-8b-instruct"):  # the tiny version and the release's
        grid = for_model(load_preset(preset), model)
        spec = {k: v for k, v in grid.items() if k not in ("name", "description")}
        cells = make_grid(spec).cells()
        assert cells and len({c.cell_id for c in cells}) == len(cells)
        assert all((c.train.data == "suite") == (model is not None) for c in cells)


def test_worker_pool_executor_runs_cells_in_separate_processes(small_base, tmp_path):
    """The one-process-per-GPU executor, exercised with two CPU workers."""
    from harness.run.executors.local import LocalProcessExecutor

    out = tmp_path / "run"
    summary = run_grid(
        requests_for(quick_spec(small_base)),
        out,
        {"name": "t"},
        LocalProcessExecutor(["cpu", "cpu"]),
    )
    assert summary.done == 2 and not summary.failed
    assert {r.status for r in load_records([out])} == {"done"}


def test_cli_grid_file_and_preset_dry_runs(tmp_path, monkeypatch, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "methods: [lora, nara]\ntasks: [synth_math]\nseeds: [0, 1]\nset:\n  nara.c_scale: [0.05, 0.1]\n"
    )
    code, stdout, _ = run_cli(["run", "--config", str(grid), "--dry-run"], monkeypatch, capsys)
    assert code == 0 and "6 cells" in stdout
    code, stdout, _ = run_cli(["run", "--preset", "nara-main", "--dry-run"], monkeypatch, capsys)
    assert code == 0 and "36 cells" in stdout


def test_cli_score_uses_the_runner_scorer(tmp_path, monkeypatch, capsys):
    from tasks.registry import get_task
    from tasks.sources import load_split

    examples = load_split(get_task("synth_math"), "test", limit=10).examples
    predictions = tmp_path / "p.jsonl"
    rows = [
        {"id": ex.id, "output": ex.target if i < 7 else "nope"} for i, ex in enumerate(examples)
    ]
    predictions.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    code, stdout, _ = run_cli(
        ["score", "--task", "synth_math", "--predictions", str(predictions)], monkeypatch, capsys
    )
    assert code == 0 and "accuracy: 0.7000" in stdout
    predictions.write_text('{"id": "no-such-id", "output": "1"}\n')
    code, _, err = run_cli(
        ["score", "--task", "synth_math", "--predictions", str(predictions)], monkeypatch, capsys
    )
    assert code == 2 and "no-such-id" in err


def test_base_row_runs_once_and_seeds_share_the_scored_set(small_base, tmp_path):
    from reports.build import build_report

    spec = quick_spec(
        small_base, methods=["base", "lora"], tasks=["synth_math_unseen"], seeds=[0, 1]
    )
    cells = make_grid(spec).cells()
    base = [c for c in cells if c.method == "base"]
    assert len(base) == 1 and base[0].seed == 0 and base[0].rank is None
    # the base cell ignores seeds and training settings: same id with another learning rate
    other = quick_spec(small_base, methods=["base"], tasks=["synth_math_unseen"], seeds=[3])
    other["set"] = {**other["set"], "train.lr": [0.5]}
    assert [c.cell_id for c in make_grid(other).cells()] == [base[0].cell_id]

    out = tmp_path / "run"
    saved = {**make_grid(spec).to_spec(), "name": "t"}
    summary = run_grid(requests_for(spec), out, saved, InProcessExecutor("cpu"))
    assert summary.done == 3 and not summary.failed
    records = {(r.method, r.seed): r for r in load_records([out])}
    hashes = {k: r.scores[0].scored_set_hash for k, r in records.items()}
    assert len(set(hashes.values())) == 1 and None not in hashes.values()
    base_record = records[("base", 0)]
    assert base_record.costs.trainable_params == 0 and not base_record.train_curve
    assert len(base_record.val_loss_bins) == 10
    assert records[("lora", 1)].costs.train_cpu_share is not None
    assert records[("lora", 1)].costs.eval_load_avg is not None

    report = build_report([out], tmp_path / "report", make_plots=False).read_text()
    main = report.split("\n## Main results")[1].split("\n## Costs")[0]
    assert "| base |" in main and "(n=1)" in main
    stats = report.split("\n## Statistics")[1]
    assert "| base |" in stats and "(n=12; MDE" in stats  # 6 examples x 2 seeds
