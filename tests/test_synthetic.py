"""Synthetic suites: disjoint deterministic splits, and gold answers score 100% through the
runner's own scorers (code through the sandbox), wrong answers 0%."""

from __future__ import annotations

import pytest

from tasks.evaluate import score_generations
from tasks.registry import get_task
from tasks.synthetic import SYNTHETIC_TASKS, pretraining_examples
from tasks.synthetic_tasks import all_families, make_split
from tasks.unseen import UNSEEN_TASKS


@pytest.mark.parametrize("name", list(all_families()))
def test_splits_are_disjoint_and_deterministic(name):
    splits = {s: make_split(name, s, 150, seed=0) for s in ("train", "validation", "test")}
    prompts = {s: {ex.prompt for ex in exs} for s, exs in splits.items()}
    assert not prompts["train"] & prompts["test"] and not prompts["validation"] & prompts["test"]
    assert not prompts["train"] & prompts["validation"]
    assert [ex.prompt for ex in make_split(name, "test", 150, seed=0)] == [
        ex.prompt for ex in splits["test"]
    ]
    assert [ex.prompt for ex in make_split(name, "train", 150, seed=1)] != [
        ex.prompt for ex in splits["train"]
    ]
    pretrain = {ex.prompt for ex in pretraining_examples(300, seed=0) if ex.meta["family"] == name}
    assert not pretrain & prompts["test"]


@pytest.mark.parametrize("name", list(all_families()))
def test_gold_answers_score_perfectly_and_wrong_ones_do_not(name):
    examples = make_split(name, "test", 40, seed=0)
    gold = score_generations(get_task(name), examples, [ex.target for ex in examples])
    assert gold.value == 1.0, [r for r in gold.per_example if not r["correct"]][:3]
    wrong = [examples[(i + 1) % len(examples)].target for i in range(len(examples))]
    wrong = [w if w != ex.target else "zzz" for w, ex in zip(wrong, examples, strict=True)]
    scored = score_generations(get_task(name), examples, wrong)
    assert scored.value < 0.5


def test_unseen_families_are_absent_from_the_pretraining_mix():
    """The headroom families must be new to the tiny base: none of their prompts, answers'
    operations or question wordings is ever drawn for pretraining."""
    mix = pretraining_examples(2000, seed=0)
    assert {ex.meta["family"] for ex in mix} == set(SYNTHETIC_TASKS)
    assert not set(UNSEEN_TASKS) & set(SYNTHETIC_TASKS)
    mix_prompts = {ex.prompt for ex in mix}
    for name in UNSEEN_TASKS:
        unseen = make_split(name, "train", 500, seed=0) + make_split(name, "test", 200, seed=0)
        assert not mix_prompts & {ex.prompt for ex in unseen}, name
    text = "\n".join(mix_prompts) + "\n".join(ex.target for ex in mix)
    markers = (
        "One more than",
        "One less than",
        "Only even",
        "Only odd",
        "Vowel",
        "len(x)",
        "x[-1]",
        "First",
        "Last",
        "Drop",
        "Item",
    )
    for marker in markers:
        assert marker not in text, marker
    slices = {ex.target.strip() for ex in make_split("synth_code_slice", "train", 500, seed=0)}
    assert len(slices) == 12 and not any(expr in text for expr in slices - {"x[1]"})
    assert "x[1]" not in {ex.target.strip() for ex in mix}
    # the vowel family's shape: four distinct letters; the mix's letter lists repeat one letter
    letter_lists = [ex.choices for ex in mix if ex.choices and ex.choices[0].isalpha()]
    assert letter_lists and all(len(set(c)) < 4 for c in letter_lists)


def test_unseen_answers_follow_their_rule():
    for ex in make_split("synth_math_unseen", "test", 100, seed=0):
        digits = [int(d) for d in ex.prompt.split()[2].split(",")]
        expected = max(digits) + 1 if "more" in ex.prompt else min(digits) - 1
        assert ex.answer == str(expected)
    for ex in make_split("synth_choice_unseen", "test", 100, seed=0):
        parity = 0 if ex.prompt.startswith("Only even") else 1
        assert [int(c) % 2 == parity for c in ex.choices].count(True) == 1
        assert int(ex.choices[ex.label]) % 2 == parity and ex.answer == ex.choices[ex.label]
    for ex in make_split("synth_choice_vowel", "test", 100, seed=0):
        assert ex.prompt == "Vowel? " + " ".join(ex.choices) and len(set(ex.choices)) == 4
        assert [c in "aeiou" for c in ex.choices].count(True) == 1
        assert ex.choices[ex.label] in "aeiou" and ex.answer == ex.choices[ex.label]


def test_slice_near_misses_fail_their_hidden_asserts():
    """The code headroom family cannot be passed by a neighbouring expression: the other k, or
    another word's expression with the same k, fails the sandbox's hidden asserts."""
    from tasks.unseen import SLICE_OPS

    examples = make_split("synth_code_slice", "test", 60, seed=0)
    near = []
    for i, ex in enumerate(examples):
        word, k = ex.prompt.split(".")[0].split()
        others = [w for w in SLICE_OPS if w != word]
        if i % 2:
            near.append(" " + SLICE_OPS[word][0].format(k=int(k) % 3 + 1))
        else:
            near.append(" " + SLICE_OPS[others[i % 3]][0].format(k=k))
    scored = score_generations(get_task("synth_code_slice"), examples, near)
    assert scored.value == 0.0, [r for r in scored.per_example if r["correct"]][:3]


def test_slice_hidden_asserts_reject_every_other_expression():
    """No scored example of the code headroom family is passed by another of its 12 expressions:
    on lists of 4 digits x[-2:] is x[2:] (and x[-3:] is x[1:]), so three hidden lists of one
    length, or repeated digits, could let a wrong word or k through."""
    from tasks.unseen import SLICE_OPS

    expressions = [t.format(k=k) for t, _ in SLICE_OPS.values() for k in (1, 2, 3)]

    def passes(expr: str, tests: str) -> bool:
        try:
            exec(tests, {"f": eval(f"lambda x: {expr}")})  # trusted: the family's own expressions
        except AssertionError:
            return False
        return True

    for ex in make_split("synth_code_slice", "test", 600, seed=0):
        assert passes(ex.answer, ex.tests)
        wrong = [e for e in expressions if e != ex.answer and passes(e, ex.tests)]
        assert not wrong, (ex.prompt, ex.answer, wrong)
