"""lm-eval integration, offline: local task YAMLs over local JSON files, a small random tiny model
saved to a folder, and a perturbed (non-identity) NaRA adapter saved in a cell folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from lm_eval.api.instance import Instance

from harness.ground.errors import BenchError
from harness.lmeval import (
    BenchDLLM,
    cut_at_stop,
    rolling_windows,
    run_lm_eval,
)
from harness.models.loader import load_model
from harness.processes.masked.likelihood import LikelihoodConfig, estimate_loglikelihood
from methods.core import HyperCore
from methods.registry import get_method, load_adapter
from results.schema import Record
from results.store import read_record, write_record
from tests.conftest import make_tiny_dlm

LM_ARGS = {
    "mc_num": 8,
    "mc_batch_size": 4,
    "seed": 3,
    "gen_length": 8,
    "steps": 4,
    "block_length": 4,
    "batch_size": 4,
}
MC_DOCS = [
    {"question": "is 2 even", "choices": ["yes", "no"], "label": 0},
    {"question": "is 3 even", "choices": ["yes", "no"], "label": 1},
    {"question": "colour of sky", "choices": ["blue", "green", "red"], "label": 0},
]
GEN_DOCS = [
    {"question": "2+2", "answer": "4"},
    {"question": "say hi", "answer": "hi"},
    {"question": "1+2", "answer": "3"},
]
MC_YAML = """task: bench_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {file}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: label
doc_to_choice: choices
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
GEN_YAML = """task: bench_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {file}
test_split: test
output_type: generate_until
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_target: answer
generation_kwargs:
  until: ["\\n\\n", "Q:"]
  max_gen_toks: 6
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""
HUB_DATASET = "dataset_path: bench-tests/not-on-this-machine"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True, raising=False)


def _save_model(folder: Path, hidden: int = 32, seed: int = 0) -> Path:
    dlm = make_tiny_dlm(seed=seed, hidden=hidden)
    folder.mkdir(parents=True)
    dlm.backbone.save_pretrained(folder)
    dlm.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lmeval")
    model_dir = _save_model(root / "model")
    # a NaRA adapter, perturbed so that C(t) != I and B != 0
    dlm = load_model(str(model_dir), "cpu")
    method = get_method("nara")
    adapter = method.apply(dlm, method.config(rank=4, hidden_sizes=(8, 8)))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in adapter.adapter_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    cell = root / "run" / "cells" / "c1"
    adapter.save(cell / "adapter")
    record = Record(
        cell_id="c1",
        status="done",
        config={"model": str(model_dir), "method": "nara", "task": "synthetic", "seed": 0},
        adapter_dir="adapter",
    )
    write_record(cell, record)
    tasks = root / "tasks"
    tasks.mkdir()
    for name, docs, yaml in (("mc", MC_DOCS, MC_YAML), ("gen", GEN_DOCS, GEN_YAML)):
        data = tasks / f"{name}.jsonl"
        data.write_text("".join(json.dumps(d) + "\n" for d in docs))
        (tasks / f"{name}.yaml").write_text(yaml.format(file=data))
    hub = MC_YAML.replace("bench_mc", "bench_hub").replace("dataset_path: json", HUB_DATASET)
    (tasks / "hub.yaml").write_text(hub.format(file=tasks / "mc.jsonl"))
    return {"root": root, "model": model_dir, "cell": cell, "tasks": tasks}


@pytest.fixture(autouse=True)
def no_default_tasks(monkeypatch):
    """lm-eval's own task index takes ~20 s to build: tests see only their local YAMLs."""
    import lm_eval.tasks

    original = lm_eval.tasks.TaskManager

    def local_only(*args, **kwargs):
        return original(*args, **{**kwargs, "include_defaults": False})

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", local_only)


def _adapted(setup) -> torch.nn.Module:
    dlm = load_model(str(setup["model"]), "cpu")
    load_adapter(dlm, setup["cell"] / "adapter")
    return dlm.eval()


def _request(kind: str, args: tuple, task: str = "t") -> Instance:
    return Instance(kind, doc={}, arguments=args, idx=0, metadata=(task, 0, 1))


def test_run_lm_eval_scores_a_cell_with_its_nara_adapter(setup):
    results = run_lm_eval(
        None, setup["cell"], ["bench_mc", "bench_gen"], None, setup["tasks"], "cpu", LM_ARGS
    )
    assert math.isfinite(results["results"]["bench_mc"]["acc,none"])
    assert math.isfinite(results["results"]["bench_gen"]["exact_match,none"])
    record = read_record(setup["cell"] / "record.json")
    by_protocol = {s.protocol: s for s in record.scores}
    assert set(by_protocol) == {"lm-eval:bench_mc", "lm-eval:bench_gen"}
    mc, gen = by_protocol["lm-eval:bench_mc"], by_protocol["lm-eval:bench_gen"]
    assert (mc.metric, mc.n, mc.steps) == ("acc", 3, None)
    assert (gen.metric, gen.n, gen.steps) == ("exact_match", 3, 4)  # max_gen_toks 6 -> 8 tokens
    assert len(mc.per_example) == 3 and all(math.isfinite(s.value) for s in record.scores)
    assert (setup["cell"] / "lm_eval_results.json").is_file()

    # the loglikelihood lm-eval got for each choice is the harness's own estimate, same seed
    dlm = _adapted(setup)
    config = LikelihoodConfig(LM_ARGS["mc_num"], LM_ARGS["mc_batch_size"], LM_ARGS["seed"])
    sample = results["samples"]["bench_mc"][0]
    for (context, choice), resp in zip(sample["arguments"], sample["resps"], strict=True):
        assert context.endswith("Answer:") and choice.startswith(" ")
        expected = estimate_loglikelihood(
            dlm, dlm.tokenizer.encode(context), dlm.tokenizer.encode(choice), config
        )
        assert resp[0][0] == pytest.approx(expected.loglik, abs=1e-6)

    # running again replaces the task's scores instead of adding a second copy
    run_lm_eval(None, setup["cell"], ["bench_mc"], 2, setup["tasks"], "cpu", LM_ARGS)
    record = read_record(setup["cell"] / "record.json")
    assert [s.protocol for s in record.scores].count("lm-eval:bench_mc") == 1
    assert [s.protocol for s in record.scores].count("lm-eval:bench_gen") == 1


def test_base_model_scores_go_to_a_new_lm_eval_record(setup, tmp_path):
    results = run_lm_eval(
        str(setup["model"]),
        None,
        ["bench_mc"],
        2,
        setup["tasks"],
        "cpu",
        LM_ARGS,
        runs_dir=tmp_path,
    )
    path = Path(results["bench_record"])
    assert path.parent.parent.parent.parent == tmp_path / "lm-eval"
    record = read_record(path)
    assert record.config["method"] == "base" and record.adapter_dir is None
    assert [s.protocol for s in record.scores] == ["lm-eval:bench_mc"]
    assert record.scores[0].n == 2


def test_loglikelihood_equals_the_harness_estimator_and_uses_the_adapter(setup):
    lm = BenchDLLM(adapter=str(setup["cell"]), device="cpu", **LM_ARGS)
    context, continuation = "Question: is 2 even\nAnswer:", " yes"
    ((value, greedy),) = lm.loglikelihood([_request("loglikelihood", (context, continuation))])
    config = LikelihoodConfig(8, 4, 3)
    ids = lm.dlm.tokenizer.encode
    expected = estimate_loglikelihood(lm.dlm, ids(context), ids(continuation), config)
    assert value == expected.loglik and greedy is False
    base = load_model(str(setup["model"]), "cpu")
    assert value != estimate_loglikelihood(base, ids(context), ids(continuation), config).loglik


def test_adapter_sees_per_sample_noise_levels(setup):
    lm = BenchDLLM(adapter=str(setup["cell"]), device="cpu", **LM_ARGS)
    seen_levels, cores = [], []
    hypernets = [m for m in lm.dlm.modules() if isinstance(m, HyperCore)]
    assert hypernets

    def probe(module, inputs, output) -> None:
        seen_levels.append(inputs[0].detach().clone())
        cores.append(output.detach().clone())

    hypernets[0].register_forward_hook(probe)
    lm.loglikelihood([_request("loglikelihood", ("Question: x\nAnswer:", " a long answer"))])
    assert len(cores) == LM_ARGS["mc_num"] // LM_ARGS["mc_batch_size"]
    levels = cores[0].shape[0]
    assert levels == LM_ARGS["mc_batch_size"]
    assert len(set(seen_levels[0].flatten().tolist())) > 1  # different within one batch
    assert not torch.allclose(cores[0][0], cores[0][1])  # so the cores differ per sample


def test_generation_honours_stop_sequences_and_max_gen_toks(setup):
    lm = BenchDLLM(adapter=str(setup["cell"]), device="cpu", **LM_ARGS)
    prompt = "Q: 2+2\nA:"
    (raw,) = lm.generate_until([_request("generate_until", (prompt, {"until": []}))])
    assert len(raw) >= 3, raw
    stop = raw[2]
    requests = [
        _request("generate_until", (prompt, {"until": [stop]})),
        _request("generate_until", (prompt, {"until": []})),
        _request("generate_until", (prompt, {"until": [stop, "never"], "max_gen_toks": 5})),
    ]
    cut, again, longer = lm.generate_until(requests)
    assert cut == raw[: raw.index(stop)] and stop not in cut
    assert again == raw
    assert stop not in longer
    assert lm._sampler_for({"max_gen_toks": 5}).gen_length == 8  # rounded up to the block
    assert lm._sampler_for({"max_gen_toks": 5}).steps == 4  # same steps per token
    assert lm._sampler_for({"max_gen_toks": 9}).gen_length == 12
    assert cut_at_stop("ab.cd\nef", ["\n", "."]) == "ab"


def test_sampler_stats_are_per_task_even_with_the_same_generation_settings(setup):
    """Two tasks with identical generation kwargs: each one's stats are those of running it
    alone (its own forwards and tokens), and neither's outputs change by running together."""
    args = {**LM_ARGS, "parallel": "threshold:0.5"}
    kwargs = {"until": [], "max_gen_toks": 8}
    a = [_request("generate_until", (f"Q: {i}+1\nA:", kwargs), "task_a") for i in range(2)]
    b = [_request("generate_until", (f"Q: {i}*3\nA:", kwargs), "task_b") for i in range(3)]
    together = BenchDLLM(adapter=str(setup["cell"]), device="cpu", **args)
    outputs = together.generate_until(a + b)
    for requests, own in ((a, outputs[: len(a)]), (b, outputs[len(a) :])):
        alone = BenchDLLM(adapter=str(setup["cell"]), device="cpu", **args)
        assert alone.generate_until(requests) == own
        name = requests[0].task_name
        mine, theirs = together.sampling[name], alone.sampling[name]
        assert (mine.forwards, mine.row_forwards, mine.tokens) == (
            theirs.forwards,
            theirs.row_forwards,
            theirs.tokens,
        )
        assert mine.row_forwards > 0
    assert together.sampling["task_a"] is not together.sampling["task_b"]


def test_loglikelihood_rolling_covers_every_token_once(setup):
    windows = rolling_windows(list(range(10)), 4)
    assert [t for _, t in windows] == [[0, 1, 2, 3], [4, 5], [6, 7], [8, 9]]
    assert windows[1][0] == [2, 3] and all(len(p) + len(t) <= 4 for p, t in windows)
    lm = BenchDLLM(dlm=make_tiny_dlm(), max_length=8, **LM_ARGS)
    (value,) = lm.loglikelihood_rolling([_request("loglikelihood_rolling", ("hello world!",))])
    assert math.isfinite(value) and value < 0


def test_adapter_for_another_base_model_is_refused(setup, tmp_path):
    other = _save_model(tmp_path / "other", hidden=48)
    with pytest.raises(BenchError, match="does not fit base model"):
        run_lm_eval(str(other), setup["cell"], ["bench_mc"], 1, setup["tasks"], "cpu", LM_ARGS)


def test_unknown_task_is_one_clear_error(setup):
    with pytest.raises(BenchError, match="unknown lm-eval task.*bench_mcq.*lm-eval ls tasks"):
        run_lm_eval(None, setup["cell"], ["bench_mcq"], 1, setup["tasks"], "cpu", LM_ARGS)


def test_missing_adapter_folder_is_one_clear_error(setup, tmp_path):
    with pytest.raises(BenchError, match="does not exist"):
        run_lm_eval(None, tmp_path / "nope", ["bench_mc"], 1, setup["tasks"], "cpu", LM_ARGS)
    with pytest.raises(BenchError, match="neither a bench cell folder"):
        run_lm_eval(None, tmp_path, ["bench_mc"], 1, setup["tasks"], "cpu", LM_ARGS)


def test_task_needing_the_hub_offline_is_one_clear_error(setup):
    with pytest.raises(BenchError, match="bench_hub need data or a metric.*--include-path"):
        run_lm_eval(None, setup["cell"], ["bench_hub"], 1, setup["tasks"], "cpu", LM_ARGS)
