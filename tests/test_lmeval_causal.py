"""lm-eval on an autoregressive base: the causal model's exact log-likelihood (and is_greedy), and
greedy generation, checked against transformers' own forward and ``generate`` on a tiny random
Llama (the tiny-ar architecture); the diffusion estimators are never called."""

from __future__ import annotations

import json

import pytest
import torch

import harness.lmeval.model as lmeval_model
from harness.lmeval import BenchDLLM, run_lm_eval
from methods.registry import get_method
from results.schema import Record
from results.store import read_record, write_record
from tests.causal_models import perturb, save_tiny_ar
from tests.test_lmeval import (  # noqa: F401 - the offline fixtures and the local task YAMLs
    GEN_DOCS,
    GEN_YAML,
    MC_DOCS,
    MC_YAML,
    _request,
    no_default_tasks,
    offline,
)

ARGS = {"seed": 0, "gen_length": 6, "batch_size": 2}


@pytest.fixture(scope="module")
def causal(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmeval-causal")
    model = save_tiny_ar(root / "model", seed=0)
    tasks = root / "tasks"
    tasks.mkdir()
    for name, docs, yaml in (("mc", MC_DOCS, MC_YAML), ("gen", GEN_DOCS, GEN_YAML)):
        data = tasks / f"{name}.jsonl"
        data.write_text("".join(json.dumps(d) + "\n" for d in docs))
        (tasks / f"{name}.yaml").write_text(yaml.format(file=data))
    return {"root": root, "model": model, "tasks": tasks}


@pytest.fixture(autouse=True)
def no_diffusion(monkeypatch):
    """A causal base must never reach the masked-diffusion estimator or sampler."""

    def refuse(*args, **kwargs):
        raise AssertionError("a diffusion estimator was called on a causal base")

    monkeypatch.setattr(lmeval_model, "estimate_loglikelihood", refuse)
    monkeypatch.setattr(lmeval_model, "generate", refuse)


def _logprob(backbone, prefix: list[int], target: list[int]) -> float:
    ids = torch.tensor([prefix + target])
    with torch.no_grad():
        logp = torch.log_softmax(backbone(input_ids=ids).logits.float(), dim=-1)
    return float(sum(logp[0, len(prefix) + i - 1, t] for i, t in enumerate(target)))


def test_loglikelihood_is_exact_and_is_greedy_is_checked(causal):
    lm = BenchDLLM(model=str(causal["model"]), device="cpu", **ARGS)
    backbone, tok = lm.dlm.backbone, lm.dlm.tokenizer
    context = "Q: 2+2\nA:"
    prefix = tok.encode_prompt(context)
    greedy = backbone.generate(
        torch.tensor([prefix]), max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id
    )[0, len(prefix) :].tolist()
    greedy_text = tok.decode(greedy)
    assert len(tok.encode(greedy_text)) == 3  # three characters, no EOS among them
    other = "zzz" if greedy_text != "zzz" else "yyy"
    requests = [_request("loglikelihood", (context, c)) for c in (greedy_text, other)]
    (v_greedy, is_greedy), (v_other, is_other) = lm.loglikelihood(requests)
    assert v_greedy == pytest.approx(_logprob(backbone, prefix, greedy), abs=1e-5)
    assert v_other == pytest.approx(_logprob(backbone, prefix, tok.encode(other)), abs=1e-5)
    assert (is_greedy, is_other) == (True, False)
    # an empty context is scored after EOS (the character tokenizer has no BOS)
    (rolling,) = lm.loglikelihood_rolling([_request("loglikelihood_rolling", ("abc d",))])
    eos = [tok.eos_token_id]
    assert rolling == pytest.approx(_logprob(backbone, eos, tok.encode("abc d")), abs=1e-5)


def test_generation_is_greedy_decoding_cut_at_stop_strings(causal):
    lm = BenchDLLM(model=str(causal["model"]), device="cpu", **ARGS)
    backbone, tok = lm.dlm.backbone, lm.dlm.tokenizer
    prompts = ["Q: 2+2\nA:", "Q: say hi\nA:", "Q: 1\nA:"]
    got = lm.generate_until([_request("generate_until", (p, {"until": []})) for p in prompts])
    for prompt, text in zip(prompts, got, strict=True):
        ids = tok.encode_prompt(prompt)
        out = backbone.generate(
            torch.tensor([ids]), max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id
        )[0, len(ids) :].tolist()
        out = out[: out.index(tok.eos_token_id)] if tok.eos_token_id in out else out
        assert text == tok.decode(out)
    stop = got[0][1] if len(got[0]) > 1 else None
    if stop:
        (cut,) = lm.generate_until([_request("generate_until", (prompts[0], {"until": [stop]}))])
        assert cut == got[0][: got[0].index(stop)]
    (short,) = lm.generate_until(
        [_request("generate_until", (prompts[0], {"until": [], "max_gen_toks": 2}))]
    )
    assert short == got[0][:2]


def _cell(root, model, method: str, fields: dict):
    from harness.models.loader import load_model

    lm = load_model(str(model), "cpu")
    impl = get_method(method)
    adapter = impl.apply(lm, impl.config_cls.from_dict(fields))
    perturb(adapter.trainable_parameters(), seed=3)
    cell = root / "run" / "cells" / method
    adapter.save(cell / "adapter")
    config = {"model": str(model), "method": method, "task": "synthetic", "seed": 0}
    write_record(cell, Record(cell_id=method, status="done", config=config, adapter_dir="adapter"))
    return cell


@pytest.mark.parametrize(
    "method, fields, label",
    [
        ("lora", {"rank": 4}, "plain"),
        ("l2d", {"rank": 4, "rep_size": 8, "embed_dim": 16}, "flow=euler:1"),
    ],
)
def test_bench_eval_scores_a_causal_cell_into_its_record(causal, method, fields, label):
    cell = _cell(causal["root"], causal["model"], method, fields)
    args = {**ARGS, "l2d_steps": 1, "solver": "euler"}
    results = run_lm_eval(None, cell, ["bench_mc", "bench_gen"], None, causal["tasks"], "cpu", args)
    record = read_record(cell / "record.json")
    by_task = {s.protocol: s for s in record.scores}
    assert {"lm-eval:bench_mc", "lm-eval:bench_gen"} <= set(by_task)
    assert by_task["lm-eval:bench_mc"].value == results["results"]["bench_mc"]["acc,none"]
    assert by_task["lm-eval:bench_gen"].sampler == label
    assert by_task["lm-eval:bench_gen"].sampling["tokens"] > 0


def test_rolling_windows_after_the_first_have_no_start_token(causal):
    """Only the first window is scored after EOS (lm-eval's prefix token); a later window's
    context is the text before it, as in lm-eval's rolling windows, not EOS + mid-text."""
    from harness.lmeval.text import rolling_windows

    lm = BenchDLLM(model=str(causal["model"]), device="cpu", max_length=8, **ARGS)
    backbone, tok = lm.dlm.backbone, lm.dlm.tokenizer
    text = "abc def ghi jkl mno"
    eos = [tok.eos_token_id]
    windows = rolling_windows(tok.encode(text), 8 - len(eos))
    assert len(windows) > 2 and all(p for p, _ in windows[1:])
    want = _logprob(backbone, eos, windows[0][1])
    want += sum(_logprob(backbone, p, t) for p, t in windows[1:])
    (rolling,) = lm.loglikelihood_rolling([_request("loglikelihood_rolling", (text,))])
    assert rolling == pytest.approx(want, abs=1e-4)
