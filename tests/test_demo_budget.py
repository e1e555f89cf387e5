"""The demo's budget: a task's own tiny training default, sampling steps that follow the cell's
generation length, and one CPU worker per core with one torch thread each."""

from __future__ import annotations

import os

import pytest
import torch

import harness.run.executors as executors
from harness.run.executors.local import LocalProcessExecutor, worker_threads
from harness.run.grid import make_grid, sampling_steps
from reports.presets import load_preset


def _cell(tasks: list[str], model: str = "tiny", **sets):
    spec = {"methods": ["lora"], "tasks": tasks, "model": model, "set": sets}
    return make_grid(spec).cells()[0]


def test_a_tasks_tiny_defaults_apply_before_set_and_limit_and_only_to_it():
    vowel = _cell(["synth_choice_vowel"])
    assert (vowel.train.steps, vowel.train.val_every, vowel.eval.limit) == (1200, 400, 500)
    assert (vowel.train.batch_size, vowel.train.lr) == (16, 4e-3)
    math, code = _cell(["synth_math_unseen"]), _cell(["synth_code_unseen"])
    assert (math.train.steps, math.eval.limit, code.eval.limit) == (400, 500, 300)
    assert (code.train.batch_size, code.train.lr) == (32, 2e-3)  # the synthetic defaults
    assert code.train.steps == 80
    slice_ = _cell(["synth_code_slice"])
    assert (slice_.train.steps, slice_.train.batch_size, slice_.train.lr) == (400, 16, 4e-3)
    assert slice_.eval.limit == 500
    assert _cell(["synth_choice"]).eval.limit == 200  # the synthetic defaults
    assert _cell(["synth_choice_vowel"], **{"train.steps": [50]}).train.steps == 50
    spec = {"methods": ["lora"], "tasks": ["synth_choice_vowel"], "limit": 40}
    assert make_grid(spec).cells()[0].eval.limit == 40
    real = _cell(["synth_choice_vowel"], model="llada-8b-instruct")
    assert real.train.steps is None  # real models keep the release's epochs


def test_sampling_steps_follow_the_cells_own_generation_length():
    spec = {"methods": ["lora"], "tasks": ["synth_math"], "set": {"eval.gen_length": [32]}}
    grid = make_grid(spec)
    cell = grid.cells()[0]
    assert cell.eval.gen_length == 32 and sampling_steps(grid, cell) == [32]
    grid = make_grid({**spec, "steps": [8]})
    assert sampling_steps(grid, grid.cells()[0]) == [8]
    grid = make_grid({"methods": ["lora"], "tasks": ["synth_math"]})
    assert sampling_steps(grid, grid.cells()[0]) == [16]


@pytest.mark.parametrize(
    ("cores", "gpus", "expected"),
    [(2, 0, "cpu,cpu"), (4, 0, "cpu,cpu,cpu,cpu"), (1, 0, "auto"), (2, 1, "auto")],
)
def test_cpu_cores_is_one_worker_per_core_unless_a_gpu_is_visible(
    monkeypatch, cores, gpus, expected
):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert executors.resolve_devices("cpu-cores") == expected
    assert executors.resolve_devices("cpu") == "cpu"
    if gpus:
        return  # no GPU here to build the executor on
    executor = executors.choose_executor("local", devices="cpu-cores")
    if expected.startswith("cpu"):
        assert isinstance(executor, LocalProcessExecutor)
        assert executor.devices == expected.split(",")
        assert worker_threads(executor.devices, "cpu") == 1
    else:
        assert not isinstance(executor, LocalProcessExecutor)


def test_cpu_workers_split_the_cores_and_gpu_workers_keep_half(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert worker_threads(["cpu", "cpu"], "cpu") == 4
    assert worker_threads(["cpu"] * 8, "cpu") == 1
    assert worker_threads(["cuda:0", "cuda:1"], "cuda:0") == 4


def test_the_demo_preset_runs_one_worker_per_core_and_only_for_the_tiny_model(monkeypatch, capsys):
    from harness.cli import main

    assert load_preset("demo")["devices"] == "cpu-cores"
    asked = []
    real_choose = executors.choose_executor

    def choose(name, devices=None, **options):
        asked.append(devices)
        return real_choose(name, devices="cpu", **options)

    monkeypatch.setattr(executors, "choose_executor", choose)
    for argv in (
        ["run", "--dry-run"],
        ["run", "--dry-run", "--devices", "cpu"],
        ["run", "--preset", "demo", "--model", "llada-8b-instruct", "--dry-run"],
    ):
        monkeypatch.setattr("sys.argv", ["bench", *argv])
        with pytest.raises(SystemExit) as exit_:
            main()
        assert not exit_.value.code, capsys.readouterr().err
    capsys.readouterr()
    assert asked == ["cpu-cores", "cpu", None]


def test_the_base_is_pretrained_on_every_core_before_workers_start(monkeypatch):
    import harness.processes.masked.pretrain as pretrain

    seen = []
    monkeypatch.setattr(pretrain.os, "cpu_count", lambda: 3)
    monkeypatch.setattr(pretrain, "ensure_tiny_base", lambda: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    pretrain.ensure_base_for_run("tiny")
    pretrain.ensure_base_for_run("/some/saved/folder")
    assert seen == [3] and torch.get_num_threads() == before


def test_the_dry_run_costs_each_phase_and_divides_by_the_workers():
    from harness.run.cell import CellRequest
    from harness.run.cell_cost import (
        SANDBOX_SECONDS_PER_PROGRAM,
        TRAIN_SECONDS_PER_TOKEN,
        WORKER_START_SECONDS,
        estimate,
        grid_seconds,
    )

    spec = {"methods": ["base", "lora"], "tasks": ["synth_code_unseen", "synth_choice_vowel"]}
    spec["limit"] = 300
    grid = make_grid(spec)
    cost = {
        (c.method, c.evaluated_tasks[0]): estimate(CellRequest(c, sampling_steps(grid, c)))
        for c in grid.cells()
    }
    base_code, lora_code = cost["base", "synth_code_unseen"], cost["lora", "synth_code_unseen"]
    assert base_code.seconds > 300 * SANDBOX_SECONDS_PER_PROGRAM  # the sandbox runs 300 programs
    assert lora_code.seconds - base_code.seconds > lora_code.train_tokens * TRAIN_SECONDS_PER_TOKEN
    vowel = cost["lora", "synth_choice_vowel"]
    per_row = vowel.train_tokens / vowel.train_examples  # measured on the task's own rows
    assert vowel.updates == 1200 and per_row < lora_code.train_tokens / lora_code.train_examples
    assert grid_seconds(100.0, 1) == 100.0
    assert grid_seconds(100.0, 2) == 50.0 + WORKER_START_SECONDS
