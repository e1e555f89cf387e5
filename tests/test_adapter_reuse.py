"""--retry-failed reuses the adapter a failed cell saved, and only when its stamp says it is this
cell's: same config, same base, every file as saved (harness/run/adapter_stamp.py)."""

from __future__ import annotations

import json

import pytest

import harness.run.cell as cell_module
from harness.run.adapter_stamp import STAMP_FILE, reuse_problem, write_stamp
from harness.run.executors.inprocess import InProcessExecutor
from harness.run.grid import make_grid
from harness.run.runner import run_grid
from results.store import load_records
from tests.test_runner import quick_spec, requests_for


def _cell(**train):
    spec = {"model": "tiny", "methods": ["lora"], "tasks": ["synth_math"], "seeds": [0]}
    spec["set"] = {f"train.{k}": [v] for k, v in train.items()}
    (cell,) = make_grid(spec).cells()
    return cell


def _folder(tmp_path, cell):
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"\x01" * 64)
    (folder / "bin0").mkdir()
    (folder / "bin0" / "adapter_config.json").write_text("{}")
    write_stamp(folder, cell, {"source": "/somewhere/tiny-base-x", "family": "tiny"})
    return folder


def test_the_stamp_names_the_config_the_base_and_every_file(tmp_path):
    cell = _cell(lr=1e-3)
    folder = _folder(tmp_path, cell)
    stamp = json.loads((folder / STAMP_FILE).read_text())
    assert stamp["cell_id"] == cell.cell_id and stamp["identity"] == cell.identity()
    assert sorted(stamp["files"]) == ["adapter_model.safetensors", "bin0/adapter_config.json"]
    assert reuse_problem(folder, cell, verify_hashes=True) is None
    # another config (its cell id differs too, but the full identity is what is compared)
    other = reuse_problem(folder, _cell(lr=2e-3))
    assert "another config" in other and "train.lr" in other
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(b"\x02" * 64)  # same size, other bytes: only the hash sees it
    assert reuse_problem(folder, cell) is None
    assert "damaged" in reuse_problem(folder, cell, verify_hashes=True)
    weights.write_bytes(b"\x01" * 10)
    assert "incomplete" in reuse_problem(folder, cell) and "10 bytes" in reuse_problem(folder, cell)
    weights.unlink()
    assert "adapter_model.safetensors is missing" in reuse_problem(folder, cell)
    (folder / STAMP_FILE).unlink()
    assert "no readable bench_cell.json" in reuse_problem(folder, cell)


def _fail_scoring_once(monkeypatch):
    real = cell_module.evaluate

    def broken(*args, **kwargs):
        raise RuntimeError("the scorer broke (simulated)")

    monkeypatch.setattr(cell_module, "evaluate", broken)
    return lambda: monkeypatch.setattr(cell_module, "evaluate", real)


def _failed_after_training(small_base, tmp_path, monkeypatch):
    spec = quick_spec(small_base, methods=["lora"])
    out = tmp_path / "run"
    restore = _fail_scoring_once(monkeypatch)
    summary = run_grid(requests_for(spec), out, {"name": "t"}, InProcessExecutor("cpu"))
    restore()
    assert len(summary.failed) == 1 and "scorer broke" in summary.failed[0]
    (record,) = load_records([out])
    assert record.status == "failed" and record.config["trained"]
    assert record.train_curve and record.costs.trainable_params  # the training is kept
    return spec, out, out / "cells" / record.cell_id


def test_retry_failed_reuses_the_saved_adapter(small_base, tmp_path, monkeypatch):
    spec, out, cell_dir = _failed_after_training(small_base, tmp_path, monkeypatch)
    weights = cell_dir / "adapter" / "adapter_model.safetensors"
    before = (weights.stat().st_mtime_ns, weights.read_bytes())

    def no_training(*args, **kwargs):
        raise AssertionError("retrained a cell whose adapter was saved")

    monkeypatch.setattr(cell_module, "train_adapter", no_training)
    retried = run_grid(
        requests_for(spec), out, {"name": "t"}, InProcessExecutor("cpu"), retry_failed=True
    )
    assert retried.done == 1 and not retried.failed
    (record,) = load_records([out])
    assert record.status == "done" and record.error is None and record.scores
    assert (weights.stat().st_mtime_ns, weights.read_bytes()) == before
    (reused,) = record.config["adapter_reused"]
    assert reused["after"] == "failed" and "scorer broke" in reused["error"]
    from results.environment import git_state

    assert (reused["git_commit"], reused["git_dirty"]) == git_state()  # the code that scored it
    assert "adapter_retrained" not in record.config
    log = (cell_dir / "log.txt").read_text()
    assert "reusing its saved adapter" in log and "not retraining" in log


def _tamper_identity(cell_dir):
    path = cell_dir / "adapter" / STAMP_FILE
    stamp = json.loads(path.read_text())
    stamp["identity"]["train"]["lr"] = 0.123  # as if another config had written it
    path.write_text(json.dumps(stamp))


def _tamper_base(cell_dir):
    path = cell_dir / "adapter" / STAMP_FILE
    stamp = json.loads(path.read_text())
    stamp["base"]["config_sha256"] = "0" * 64  # trained on another base at the same path
    path.write_text(json.dumps(stamp))


def _truncate(cell_dir):
    weights = cell_dir / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])


@pytest.mark.parametrize(
    "tamper, reason",
    [
        (_tamper_identity, "another config"),
        (_tamper_base, "another base"),
        (_truncate, "incomplete"),
    ],
)
def test_retry_failed_retrains_when_the_adapter_is_not_this_cells(
    small_base, tmp_path, monkeypatch, tamper, reason
):
    spec, out, cell_dir = _failed_after_training(small_base, tmp_path, monkeypatch)
    tamper(cell_dir)
    trainings = []
    real = cell_module.train_adapter

    def counted(*args, **kwargs):
        trainings.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cell_module, "train_adapter", counted)
    retried = run_grid(
        requests_for(spec), out, {"name": "t"}, InProcessExecutor("cpu"), retry_failed=True
    )
    assert retried.done == 1 and trainings == [1]
    (record,) = load_records([out])
    assert record.status == "done" and reason in record.config["adapter_retrained"]
    assert "adapter_reused" not in record.config
    assert reuse_problem(cell_dir / "adapter", record_cell(spec), verify_hashes=True) is None
    assert "retraining, not reusing its adapter" in (cell_dir / "log.txt").read_text()


def record_cell(spec):
    (cell,) = make_grid(spec).cells()
    return cell


def test_a_base_whose_weights_changed_is_another_base(tmp_path):
    """A local base folder trained further (or a tiny base rebuilt) keeps its config.json: the
    stamp must see the weights, not only the config, or the adapter is reused on another base."""
    import os
    from types import SimpleNamespace

    from harness.run.adapter_stamp import base_identity, base_problem

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text('{"hidden_size": 8}')
    weights = base / "model.safetensors"
    weights.write_bytes(b"\x01" * 256)
    model = SimpleNamespace(
        info=SimpleNamespace(source=str(base), family="tiny"),
        backbone=SimpleNamespace(config=SimpleNamespace()),
    )
    cell = _cell(lr=1e-3)
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"\x01" * 64)
    write_stamp(folder, cell, base_identity(model))
    assert base_problem(folder, model) is None
    weights.write_bytes(b"\x02" * 256)  # same size and config, other weights
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # written a second later
    problem = base_problem(folder, model)
    assert problem is not None and "another base" in problem and "model.safetensors" in problem


def test_the_same_base_files_in_another_folder_are_the_same_base(tmp_path):
    """A moved cache (another BENCH_CACHE, a copied run) holds the same bytes: not another base;
    a folder whose files differ still is."""
    import shutil
    from types import SimpleNamespace

    from harness.run.adapter_stamp import base_identity, base_problem

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text('{"hidden_size": 8}')
    (base / "model.safetensors").write_bytes(b"\x01" * 256)

    def model_at(folder):
        return SimpleNamespace(
            info=SimpleNamespace(source=str(folder), family="tiny"),
            backbone=SimpleNamespace(config=SimpleNamespace()),
        )

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"\x01" * 64)
    write_stamp(folder, _cell(lr=1e-3), base_identity(model_at(base)))
    moved = tmp_path / "elsewhere" / "base"
    shutil.copytree(base, moved)
    assert base_problem(folder, model_at(moved)) is None
    (moved / "model.safetensors").write_bytes(b"\x02" * 256)
    assert "another base" in base_problem(folder, model_at(moved))


def test_a_stamp_without_base_files_is_checked_on_its_config(tmp_path):
    """Stamps written before the base's files were recorded keep working (config.json only)."""
    from types import SimpleNamespace

    from harness.run.adapter_stamp import base_identity, base_problem

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text('{"hidden_size": 8}')
    (base / "model.safetensors").write_bytes(b"\x01" * 16)
    model = SimpleNamespace(
        info=SimpleNamespace(source=str(base), family="tiny"),
        backbone=SimpleNamespace(config=SimpleNamespace()),
    )
    folder = tmp_path / "adapter"
    folder.mkdir()
    old = {k: v for k, v in base_identity(model).items() if k != "files"}
    write_stamp(folder, _cell(lr=1e-3), old)
    assert base_problem(folder, model) is None
    (base / "config.json").write_text('{"hidden_size": 16}')
    assert "another base" in base_problem(folder, model)


def test_an_adapter_of_another_model_family_is_refused_before_it_loads(tmp_path, monkeypatch):
    """A tiny dLLM's LoRA fits tiny-ar's layers shape for shape: only the stamp tells that it was
    trained on a masked-diffusion base, so `bench sample` / `bench eval` stop on it."""
    from types import SimpleNamespace

    from harness.lmeval import adapters
    from harness.run.adapter_stamp import family_problem

    folder = _folder(tmp_path, _cell(lr=1e-3))  # stamped: a tiny base

    def model(family, name="m"):
        return SimpleNamespace(info=SimpleNamespace(family=family, name=name, source="x"))

    assert "trained on a tiny base" in family_problem(folder, model("tiny-ar", "tiny-ar"))
    assert family_problem(folder, model("tiny")) is None
    assert family_problem(folder, model("generic")) is None  # a folder of unknown family
    (folder / STAMP_FILE).unlink()
    assert family_problem(folder, model("tiny-ar")) is None  # no stamp: the shape check only

    (tmp_path / "again").mkdir()
    stamped = _folder(tmp_path / "again", _cell(lr=1e-3))
    (stamped / "bench_method.json").write_text('{"format": 1, "method": "lora", "config": {}}')
    loaded = []
    monkeypatch.setattr(
        "harness.models.loader.load_model", lambda name, device: model("tiny-ar", name)
    )
    monkeypatch.setattr("methods.registry.load_adapter", lambda *a: loaded.append(a))
    with pytest.raises(adapters.BenchError, match="'tiny-ar' is a tiny-ar model"):
        adapters.load_adapted("tiny-ar", stamped)
    assert not loaded
