"""The record schema: round trip, validation on load, clear errors naming the file."""

import json

import pytest

from harness.ground.errors import BenchError
from results.schema import SCHEMA_VERSION, Record
from results.store import RECORD_NAME, read_record, write_record
from results.testing import make_record


def _write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_record_round_trips_through_dict_and_file(tmp_path):
    rec = make_record(
        "nara", "synth_math", 1, [1, 0, 1], axes={"nara.c_scale": 0.1}, bins=[(1.0, 2.0)] * 10
    )
    again = Record.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert again == rec
    path = write_record(tmp_path / "cell", rec)
    loaded = read_record(path)
    assert loaded == rec
    assert loaded.source == path
    assert loaded.scores[0].per_example[2] == {
        "id": "ex2",
        "prediction": "1",
        "extracted": "1",
        "correct": 1,
    }
    assert loaded.to_dict()["schema_version"] == SCHEMA_VERSION


def test_wrong_schema_version_names_the_file(tmp_path):
    data = make_record().to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    path = _write_json(tmp_path / "c" / RECORD_NAME, data)
    with pytest.raises(BenchError, match=rf"record\.json.*schema version {SCHEMA_VERSION + 1}"):
        read_record(path)


def test_missing_schema_version_names_the_file(tmp_path):
    data = make_record().to_dict()
    del data["schema_version"]
    path = _write_json(tmp_path / "c" / RECORD_NAME, data)
    with pytest.raises(BenchError, match=r"record\.json: not a result record"):
        read_record(path)


@pytest.mark.parametrize("drop", ["cell_id", "status", "config", "scores", "costs", "created_at"])
def test_missing_top_level_field_is_named(tmp_path, drop):
    data = make_record().to_dict()
    del data[drop]
    path = _write_json(tmp_path / "c" / RECORD_NAME, data)
    with pytest.raises(BenchError, match=rf"{RECORD_NAME}: .*{drop}"):
        read_record(path)


@pytest.mark.parametrize("drop", ["method", "task", "seed", "model"])
def test_missing_config_key_is_named(tmp_path, drop):
    data = make_record().to_dict()
    del data["config"][drop]
    path = _write_json(tmp_path / "c" / RECORD_NAME, data)
    with pytest.raises(BenchError, match=rf"config is missing required field\(s\): \['{drop}'\]"):
        read_record(path)


def test_score_and_example_fields_are_checked(tmp_path):
    data = make_record().to_dict()
    del data["scores"][0]["per_example"][0]["correct"]
    path = _write_json(tmp_path / "a" / RECORD_NAME, data)
    with pytest.raises(BenchError, match="per_example.*correct"):
        read_record(path)
    data = make_record().to_dict()
    data["scores"][0]["value"] = "high"
    path = _write_json(tmp_path / "b" / RECORD_NAME, data)
    with pytest.raises(BenchError, match="must be a number"):
        read_record(path)


def test_unknown_status_is_rejected_on_write_and_nothing_is_written(tmp_path):
    rec = make_record()
    rec.status = "finished"
    with pytest.raises(BenchError, match="status 'finished' is not one of done, failed, running"):
        write_record(tmp_path / "cell", rec)
    assert not (tmp_path / "cell" / RECORD_NAME).exists()


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "c" / RECORD_NAME
    path.parent.mkdir()
    path.write_text("{not json")
    with pytest.raises(BenchError, match=r"record\.json: not valid JSON"):
        read_record(path)


def test_collect_environment_fills_versions_and_git_state(tmp_path):
    import platform
    import subprocess

    import torch

    from results.environment import collect_environment, git_state

    env = collect_environment(device_name="cpu", threads=2, cwd=tmp_path)
    assert env.python == platform.python_version()
    assert env.cpu_kernels == torch.backends.cpu.get_cpu_capability()
    assert "torch" in env.packages and "pandas" in env.packages
    assert (env.git_commit, env.git_dirty) == (None, None)  # not a repository
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "f.txt").write_text("1")
    subprocess.run(["git", "add", "f.txt"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    commit, dirty = git_state(repo)
    assert len(commit) == 40 and dirty is False
    (repo / "f.txt").write_text("2")
    assert git_state(repo) == (commit, True)
