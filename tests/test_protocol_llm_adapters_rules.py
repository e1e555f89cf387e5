"""Protocols as named, recorded choices (tasks/protocols.py), without the reference files.

The reference rule and bench's own rule are both named and both reachable: AQuA's first capital
letter anywhere vs the first standalone letter, choice words case-sensitive vs in any case, GSM8K's
last number vs its stated answer. The protocol is a typed config field, recorded in every cell and
named in the report; the paper presets follow ``llm-adapters`` on real models; records written
before protocols existed still load. The conformance against LLM-Adapters' own files is in
tests/test_protocol_llm_adapters.py.
"""

from __future__ import annotations

import json

import pytest

from harness.config.cell import EvalConfig
from harness.ground.errors import BenchError
from harness.run.grid import make_grid
from reports.presets import for_model, load_preset
from reports.tables.footnotes import footnotes
from results.schema import SCHEMA_VERSION, Record, Score
from results.testing import make_record
from tasks.base import Example
from tasks.commonsense import siqa, winogrande
from tasks.evaluate import score_generations
from tasks.prompts import format_prompt, instruction, loglik_requests, sft_pair
from tasks.protocols import PROTOCOLS, get_protocol
from tasks.registry import get_task

REAL = "llada-8b-instruct"
PAD = " " * 16


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_HUB", "0")
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))


def _judge(task: str, gold: str, outputs: list[str], follows: str):
    ex = Example(id="x", prompt="q", target="t", answer=gold)
    score = score_generations(get_task(task), [ex] * len(outputs), outputs, follows=follows)
    return [row["correct"] for row in score.per_example], score.answer_rule


# -- answer rules -------------------------------------------------------------------------------
def test_aqua_reads_the_first_capital_under_llm_adapters_and_a_standalone_letter_under_bench():
    outputs = ["Bill's share is smaller, so the answer is (C).", "Answer: (C)", "each is c"]
    assert _judge("aqua", "C", outputs, "llm-adapters") == ([False, False, False], "first-capital")
    assert _judge("aqua", "C", outputs, "bench") == ([True, True, False], "standalone-letter")
    assert _judge("aqua", "A", outputs, "llm-adapters")[0] == [False, True, False]


def test_choice_words_match_case_sensitively_under_llm_adapters_only():
    outputs = ["the correct answer is answer2", "The correct answer is Answer2", "ANSWER2"]
    assert _judge("siqa", "answer2", outputs, "llm-adapters") == (
        [True, False, False],
        "first-match",
    )
    assert _judge("siqa", "answer2", outputs, "bench") == (
        [True, True, True],
        "first-match-any-case",
    )


def test_gsm8k_takes_the_last_number_under_llm_adapters_and_the_stated_one_elsewhere():
    outputs = ["The answer is 5. Check: 5 + 1 = 6", "#### 5\nso 7", "so it is 5"]
    assert _judge("gsm8k", "5", outputs, "llm-adapters") == ([False, False, True], "last-number")
    for follows in ("bench", "llada", "lm-eval"):
        assert _judge("gsm8k", "5", outputs, follows) == ([True, True, True], "stated-number")
    # SVAMP and the other LLM-Adapters sets are read by their last number under every protocol
    assert _judge("svamp", "5", outputs, "bench") == ([False, False, True], "last-number")


def test_numbers_within_the_tolerance_bound_count_as_reference_does():
    assert _judge("svamp", "2", ["2.001", "2.0011", "1.999"], "llm-adapters")[0] == [
        True,
        False,
        True,
    ]


def test_unknown_protocol_fails_with_one_line():
    with pytest.raises(BenchError, match=r"unknown protocol 'llm_adapters'.*valid: bench"):
        get_protocol("llm_adapters")
    with pytest.raises(BenchError, match=r"unknown protocol"):
        EvalConfig(follows="paper")
    assert set(PROTOCOLS) == {"bench", "llm-adapters", "llada", "lm-eval"}


# -- prompts ------------------------------------------------------------------------------------
def test_commonsense_options_follow_llm_adapters_layout():
    row = {"context": "Ann lost.", "question": "Why?", "answerA": "a", "answerB": "b"}
    ex = siqa({**row, "answerC": "c ", "label": "2"}, 0)
    assert instruction(ex) == (
        "Please choose the correct answer to the question: Ann lost. Why?\n\n"
        "Answer1: a Answer2: b Answer3: c \n\nAnswer format: answer1/answer2/answer3"
    )
    wino = winogrande({"sentence": "A _ b.", "option1": "X", "option2": "Y", "answer": "1"}, 0)
    assert instruction(wino).endswith(
        "A _ b.\n\nOption1: X Option2: Y Answer format: option1/option2"
    )


def test_llm_adapters_template_keeps_its_indentation_and_trailing_spaces():
    ex = Example(id="x", prompt=" 3 + 4? ", target="7", meta={"output": "\n7 "})
    evaluation = format_prompt(ex, "llm-adapters")
    assert evaluation.endswith(
        f"request. \n\n{PAD}### Instruction:\n{PAD} 3 + 4? \n\n{PAD}### Response:\n{PAD}"
    )
    prompt, response = sft_pair(ex, "llm-adapters")
    assert prompt.endswith(
        f"request.  \n\n{PAD}### Instruction:\n{PAD} 3 + 4? \n{PAD}\n{PAD}### Response:\n{PAD}"
    )
    assert response == "\n7 "
    assert sft_pair(ex, "alpaca") == (format_prompt(ex, "alpaca"), "7")  # the clean template


def test_a_row_from_an_llm_adapters_file_refuses_loglik_with_one_line(
    offline, monkeypatch, tmp_path
):
    folder = tmp_path / "data" / "social_i_qa"
    folder.mkdir(parents=True)
    row = {"instruction": "Q?\n\nAnswer1: a Answer2: b\n\nAnswer format: answer1/answer2"}
    (folder / "test.json").write_text(
        json.dumps([{**row, "input": "", "output": "", "answer": "answer1"}])
    )
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    from tasks.sources import load_split

    (ex,) = load_split(get_task("siqa"), "test").examples
    assert instruction(ex) == row["instruction"] and ex.answer == "answer1"
    with pytest.raises(BenchError, match="LLM-Adapters test file, which has no choice texts"):
        loglik_requests(ex)


# -- config, grid, presets ----------------------------------------------------------------------
def test_llm_adapters_protocol_fixes_its_template_and_bench_keeps_the_chosen_one():
    assert EvalConfig(follows="llm-adapters").template == "llm-adapters"
    assert EvalConfig(follows="llm-adapters", template="chat").template == "llm-adapters"
    assert EvalConfig(template="chat").template == "chat"
    with pytest.raises(BenchError, match="unknown eval.template 'xml'"):
        EvalConfig(template="xml")


def test_default_protocol_leaves_cell_ids_unchanged_and_another_one_changes_them(offline):
    spec = {"model": REAL, "methods": "lora", "tasks": "aqua"}
    (bench,) = make_grid(spec).cells()
    (paper,) = make_grid({**spec, "set": {"eval.follows": ["llm-adapters"]}}).cells()
    assert "follows" not in bench.identity()["eval"]
    assert bench.to_dict()["eval"]["follows"] == "bench"
    assert paper.identity()["eval"]["follows"] == "llm-adapters"
    assert paper.eval.template == "llm-adapters" and paper.cell_id != bench.cell_id


@pytest.mark.parametrize("preset", ["nara-main", "rank-sweep", "nara-cscale", "steps-scaling"])
def test_paper_presets_follow_llm_adapters_on_real_models(offline, preset):
    grid = load_preset(preset)
    real = make_grid({k: v for k, v in for_model(grid, REAL).items() if k != "report"})
    assert {c.eval.follows for c in real.cells()} == {"llm-adapters"}
    tiny = make_grid({k: v for k, v in for_model(grid, "tiny").items() if k != "report"})
    assert {c.eval.follows for c in tiny.cells()} == {"bench"}


# -- records and report -------------------------------------------------------------------------
def test_records_name_the_protocol_and_the_answer_rule():
    rec = make_record("lora", "aqua", eval_cfg={"protocol": "gen", "follows": "llm-adapters"})
    rec.scores[0].answer_rule = "first-capital"
    again = Record.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert again.scores[0].answer_rule == "first-capital"
    assert again.config["eval"]["follows"] == "llm-adapters"
    assert rec.to_dict()["schema_version"] == SCHEMA_VERSION == 3
    with pytest.raises(BenchError, match="answer_rule must be a string"):
        Score.from_dict({**rec.scores[0].to_dict(), "answer_rule": 3})


def test_records_written_before_protocols_load_as_bench():
    data = make_record("lora", "aqua").to_dict()
    data["schema_version"] = 2
    old = Record.from_dict(data)
    assert old.schema_version == SCHEMA_VERSION
    assert old.config["eval"]["follows"] == "bench" and old.scores[0].answer_rule is None


def test_report_names_the_protocol_and_rule_of_each_task():
    rec = make_record("lora", "aqua", eval_cfg={"protocol": "gen", "follows": "llm-adapters"})
    rec.scores[0].answer_rule = "first-capital"
    notes = " ".join(footnotes([rec]))
    assert "Evaluation of aqua: follows llm-adapters (answer rule first-capital)" in notes


def test_rescoring_under_another_protocol_names_its_rule(offline, tmp_path):
    from tasks.cli import score_predictions
    from tasks.sources import load_split

    ex = load_split(get_task("boolq"), "test").examples[0]
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": ex.id, "output": ex.answer.capitalize()}) + "\n")
    bench, _ = score_predictions("boolq", path)
    paper, _ = score_predictions("boolq", path, follows="llm-adapters")
    assert (bench["accuracy"], bench["answer_rule"]) == (1.0, "first-match-any-case")
    assert (paper["accuracy"], paper["answer_rule"]) == (0.0, "first-match")
