"""Answer extraction and scoring on hand-written outputs, for every task."""

from __future__ import annotations

import math

import pytest

from harness.ground.errors import BenchError
from tasks.base import Example
from tasks.evaluate import extract_answer, score_generations, score_loglik
from tasks.prompts import ALPACA, format_prompt, loglik_requests, sft_pair
from tasks.registry import get_task
from tasks.scoring import (
    extract_code,
    first_letter,
    last_boxed,
    last_number,
    math_equal,
    mc_predictions,
    normalize_math,
    pass_at_k,
)


def _ex(answer: str, **kw) -> Example:
    return Example(id="x", prompt="q", target="t", answer=answer, **kw)


# (task, gold, output, expected extraction, expected correct)
CASES = [
    ("boolq", "true", "the correct answer is true", "true", True),
    ("boolq", "false", "True. But false is also said.", "true", False),
    ("boolq", "false", "I cannot tell", None, False),
    ("piqa", "solution2", "the correct answer is solution2", "solution2", True),
    ("piqa", "solution1", "Solution2 is wrong, solution1 is right", "solution2", False),
    ("siqa", "answer3", "the correct answer is answer3.", "answer3", True),
    ("siqa", "answer1", "answer2 answer1", "answer2", False),
    ("hellaswag", "ending4", "the correct answer is ending4", "ending4", True),
    ("hellaswag", "ending1", "ending 1", None, False),
    ("winogrande", "option2", "the correct answer is option2", "option2", True),
    ("winogrande", "option1", "Option2", "option2", False),
    ("arc_e", "answer1", "the correct answer is answer1", "answer1", True),
    ("arc_c", "answer4", "answer3", "answer3", False),
    ("obqa", "answer2", "The correct answer is Answer2", "answer2", True),
    ("gsm8k", "18", "9 eggs * $2 = $18. The answer is 18", 18.0, True),
    ("gsm8k", "1200", "so 1,200 dollars", 1200.0, True),
    ("gsm8k", "18", "The answer is 18 and then 3 more", 18.0, True),  # stated answer wins
    ("gsm8k", "0.5", "half is 0.5004", 0.5004, True),
    ("gsm8k", "-3", "it drops to -3", -3.0, True),
    ("gsm8k", "7", "no number here", None, False),
    ("math500", r"\frac{1}{2}", r"so $x = \boxed{\dfrac{1}{2}}$.", r"\dfrac{1}{2}", True),
    (
        "math500",
        r"\left( 3, \frac{\pi}{2} \right)",
        r"\boxed{(3,\frac{\pi}{2})}",
        r"(3,\frac{\pi}{2})",
        True,
    ),
    ("math500", "0.5", r"first \boxed{2} then \boxed{\frac12}", r"\frac12", True),
    ("math500", "10", r"\boxed{10.0}", "10.0", True),
    ("math500", "10", r"\boxed{\text{10}}", r"\text{10}", True),
    ("math500", "3", r"the answer is 3", None, False),
    ("math500", "5", r"\boxed{6}", "6", False),
    ("svamp", "22", "14 + 8 = 22. The answer is 22.", 22.0, True),
    ("addsub", "3.5", "so 3.5004", 3.5004, True),
    ("multiarith", "12", "The answer is 12, then 13", 13.0, False),
    ("singleeq", "1200", "1,200", 1200.0, True),
    ("aqua", "C", "(C) because not (A)", "C", True),
    ("aqua", "E", "The answer is E", "E", True),
    ("aqua", "B", "A train leaves", "A", False),
    ("synth_math", "7", "There are 7 now.", 7.0, True),
    ("synth_choice", "7", "7", "7", True),
    ("synth_choice", "b", "a b", "a", False),
    ("synth_choice", "b", "B.", "b", True),
    ("synth_math_unseen", "10", "10", 10.0, True),
    ("synth_math_unseen", "0", "9", 9.0, False),
    ("synth_choice_unseen", "8", "8", "8", True),
    ("synth_choice_vowel", "o", "o", "o", True),
    ("synth_choice_vowel", "o", "i", "i", False),
]


@pytest.mark.parametrize(("task", "gold", "output", "extracted", "correct"), CASES)
def test_generative_extraction_on_hand_written_outputs(task, gold, output, extracted, correct):
    got, ok = extract_answer(get_task(task), _ex(gold), output)
    assert got == extracted
    assert ok is correct


def test_every_non_synthetic_task_has_an_extraction_case():
    covered = {c[0] for c in CASES} | {"humaneval", "mbpp", "synth_code", "synth_code_unseen"}
    covered |= {"synth_code_slice"}
    from tasks.registry import get_task, task_names

    text_scored = {t for t in task_names() if get_task(t).suite != "theory"}  # sandbox: no text
    assert text_scored <= covered


def test_score_generations_aggregates_per_example_rows():
    spec = get_task("boolq")
    exs = [_ex("true"), Example(id="y", prompt="q", target="t", answer="false")]
    score = score_generations(spec, exs, ["true", "the correct answer is true"])
    assert (score.metric, score.value, score.n) == ("accuracy", 0.5, 2)
    assert [r["correct"] for r in score.per_example] == [True, False]
    assert score.per_example[1]["extracted"] == "true"
    with pytest.raises(BenchError, match="1 outputs for 2 examples"):
        score_generations(spec, exs, ["true"])
    with pytest.raises(BenchError, match="no protocol 'loglik'"):
        score_loglik("gsm8k", exs, [[0.0], [0.0]])


def test_loglik_acc_and_length_normalised_acc():
    ex = Example(id="m", prompt="q", target="t", choices=("a", "bbbbbbbbbb"), label=1, meta={})
    # raw: choice 0 more likely; per character: choice 1 (-2/10 > -1/1)
    assert mc_predictions([-1.0, -2.0], ["a", "bbbbbbbbbb"]) == (0, 1)
    score = score_loglik(get_task("synth_choice"), [ex], [[-1.0, -2.0]])
    assert score.value == 0.0 and score.extra["acc_norm"] == 1.0
    with pytest.raises(BenchError):
        score_loglik(get_task("synth_choice"), [ex], [[-1.0]])


def test_loglik_requests_follow_lm_eval_layouts():
    ex = Example(
        "p", "Please choose", "t", choices=("up", "down"), label=0,
        meta={"loglik_prompt": "Question: which way?\nAnswer:"},
    )  # fmt: skip
    assert loglik_requests(ex) == [
        ("Question: which way?\nAnswer:", " up"),
        ("Question: which way?\nAnswer:", " down"),
    ]
    wino = Example(
        "w", "p", "t", choices=("Ann", "Bo"), label=1,
        meta={"loglik_contexts": ["so Ann", "so Bo"], "loglik_continuation": " left."},
    )  # fmt: skip
    assert loglik_requests(wino) == [("so Ann", " left."), ("so Bo", " left.")]


def test_prompt_templates():
    ex = Example(
        "a",
        "Is it?",
        "the correct answer is true",
        meta={"format_hint": "Answer format: true/false"},
    )
    alpaca = format_prompt(ex)
    assert alpaca == ALPACA.format(instruction="Is it?\n\nAnswer format: true/false")
    assert alpaca.startswith("Below is an instruction") and alpaca.endswith("### Response:\n")
    assert format_prompt(ex, "plain") == "Is it?\n\nAnswer format: true/false"
    chat = format_prompt(ex, "chat", chat_fn=lambda m: f"<u>{m[0]['content']}</u><a>")
    assert chat == "<u>Is it?\n\nAnswer format: true/false</u><a>"
    assert sft_pair(ex)[1] == "the correct answer is true"
    with pytest.raises(BenchError, match="chat_fn"):
        format_prompt(ex, "chat")
    with pytest.raises(BenchError, match="unknown prompt template"):
        format_prompt(ex, "xml")


def test_last_number_and_boxed():
    assert last_number("a 1,234.5 b 7") == 7.0
    assert last_number("total: 1,234.5") == 1234.5
    assert last_boxed(r"\boxed{\frac{a}{b}} and \boxed{x^{2}}") == "x^{2}"
    assert last_boxed(r"\boxed 5$") == "5"
    assert last_boxed(r"\boxed{unclosed") is None
    assert first_letter("Answer: C") == "C"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (r"\left( 1, 2 \right)", "(1,2)"),
        (r"\dfrac{3}{4}", r"\frac34"),
        (r"\$32,\!348", "32348"),
        (r"90^\circ", "90"),
        (r"5 \text{ cm}^2", "5"),
        ("$7$", "7.0"),
        (r"\text{Monday}", "Monday"),
        ("0.25", r"\frac{1}{4}"),
    ],
)
def test_math_normalisation_equates(a, b):
    assert math_equal(a, b), (normalize_math(a), normalize_math(b))


def test_math_normalisation_keeps_different_answers_apart():
    assert not math_equal("(1,2)", "(2,1)")
    assert not math_equal(r"\frac{1}{3}", "0.33")
    assert not math_equal(r"\sqrt{2}", "2")


def test_unbiased_pass_at_k():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 5) == 1.0
    assert math.isclose(pass_at_k(10, 3, 1), 0.3)
    # 1 - C(7,5)/C(10,5) = 1 - 21/252
    assert math.isclose(pass_at_k(10, 3, 5), 1 - 21 / 252)
    assert pass_at_k(5, 1, 5) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 5)


HE_PROMPT = 'def add(a, b):\n    """Add."""\n'


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("    return a + b\n\ndef other():\n    pass\n", "    return a + b\n"),
        (
            "    return a + b\nif __name__ == '__main__':\n    print(add(1, 2))\n",
            "    return a + b\n",
        ),
        ("    return a + b\nprint(add(1, 2))\n", "    return a + b\n"),
        ("    x = a\n\n    return x + b\n```\nmore text", "    x = a\n\n    return x + b\n"),
        ("    return a + b\n# test\nassert add(1, 1) == 2\n", "    return a + b\n"),
    ],
)
def test_code_body_is_cut_at_the_first_top_level_statement(output, expected):
    assert extract_code(output, "body", "add") == expected


def test_code_extraction_takes_whole_functions_from_fences_and_redefinitions():
    fenced = "Sure:\n```python\nimport math\n\ndef add(a, b):\n    return a + b\n```\nDone."
    assert (
        extract_code(fenced, "body", "add") == "import math\n\ndef add(a, b):\n    return a + b\n"
    )
    mbpp = "MAX = 3\ndef f(x):\n    return x + MAX\n\ndef g(y):\n    return f(y)\n\nprint(g(1))\nassert g(1) == 4\n"
    assert extract_code(mbpp, "function") == (
        "MAX = 3\ndef f(x):\n    return x + MAX\n\ndef g(y):\n    return f(y)\n"
    )
    assert extract_code("    return x * 2\nassert f(1) == 2", "body") == "    return x * 2\n"


def test_code_scoring_runs_programs_and_reports_pass_at_k():
    he = get_task("humaneval")
    ex = Example(
        "HumanEval/x",
        HE_PROMPT,
        "    return a + b\n",
        tests="def check(c):\n    assert c(1, 2) == 3\n",
        entry_point="add",
    )
    good, bad = "    return a + b\n", "    return a - b\n"
    score = score_generations(he, [ex, ex], [[good, bad, good], [bad, bad, bad]])
    assert score.metric == "pass@1"
    assert math.isclose(score.value, (2 / 3 + 0) / 2)
    assert [r["correct"] for r in score.per_example] == [True, False]
    assert score.per_example[0]["n_passed"] == 2
    assert (
        math.isclose(score.extra["pass@3"], (pass_at_k(3, 2, 3) + 0) / 2)
        and "pass@5" not in score.extra
    )
    redefined = "```python\ndef add(a, b):\n    return b + a\n```"
    assert score_generations(he, [ex], [redefined]).value == 1.0


def test_synthetic_code_program_scores_expression_completions():
    spec = get_task("synth_code")
    from tasks.sources import load_split

    exs = load_split(spec, "test", limit=20).examples
    score = score_generations(spec, exs, [ex.target for ex in exs])
    assert score.value == 1.0, [r["stderr"] for r in score.per_example if not r["correct"]]
    wrong = score_generations(spec, exs[:5], [" None" for _ in exs[:5]])
    assert wrong.value == 0.0


def test_math_answers_equal_symbolically_with_math_verify():
    from tasks.scoring import math_equal

    assert math_equal("\\sqrt{2}/2", "\\frac{\\sqrt2}{2}")
    assert math_equal("(x+1)^2", "x^2+2x+1")
    assert math_equal("\\frac{1}{2}", "0.5")
    assert not math_equal("(x+1)^2", "x^2+1")
    assert not math_equal("\\sqrt{3}/2", "\\frac{\\sqrt2}{2}")
    assert not math_equal("\\frac{", "2")  # unparsable: wrong, no exception


def test_gsm8k_takes_the_stated_answer_then_the_last_number():
    from tasks.scoring import stated_number

    assert stated_number("5 + 3 = 8 apples.\n#### 8\nThen 2 more for 10 friends.") == 8.0
    assert stated_number("So she pays $1,234. The answer is 1,234. Next question: 7") == 1234.0
    assert stated_number("the answer is: -3 because 4 - 7") == -3.0
    assert stated_number("she has 4 then 9") == 9.0  # nothing stated: last number
    assert stated_number("no numbers") is None


def test_gsm8k_scorer_keeps_a_correct_stated_answer_followed_by_other_numbers():
    from tasks.base import Example
    from tasks.evaluate import score_generations

    ex = Example(id="g1", prompt="q", target="#### 18", answer="18")
    out = "She sells 16 - 3 - 4 = 9 eggs for $18.\n#### 18\n\nQuestion 2: 5 cats"
    assert score_generations(get_task("gsm8k"), [ex], [out]).value == 1.0
