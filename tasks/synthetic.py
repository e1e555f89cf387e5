"""Synthetic task families that a tiny dLLM can learn on a CPU in minutes.

One family per suite, chosen from what a small masked-diffusion model demonstrably learns in a few
CPU minutes (selection and small lookups, not multi-digit arithmetic; see the feasibility note):

- ``synth_math``: short word problems with a numeric answer (largest, smallest, a small sum);
- ``synth_choice``: four-way multiple choice with distractors (largest, smallest, odd one out;
  the answer is the chosen option itself);
- ``synth_code``: a one-line Python function inferred from input/output examples, scored by
  running hidden asserts in the sandbox.

Prompts are terse on purpose: the tiny model reads characters, and every character of prompt is
compute that a CPU-minute budget cannot spare.

Splits are disjoint by construction: every generated prompt is assigned to train, validation or
test by a hash of its text, so no prompt can appear in two splits whatever the seeds.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from harness.ground.errors import BenchError
from tasks.base import Example

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SyntheticFamily:
    name: str
    suite: str  # the real suite it stands in for: math | commonsense | code
    description: str
    make: Callable[[random.Random], dict]


NAMES = ("Ann", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Ivy")
ITEMS = ("apples", "coins", "pens", "cards", "eggs", "shells")


def _math_item(rng: random.Random) -> dict:
    op = rng.choice(("largest", "smallest", "sum"))
    item = rng.choice(ITEMS)
    if op == "sum":
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        prompt = f"{rng.choice(NAMES)} has {a} {item}, gets {b}. Total?"
        return {"prompt": prompt, "answer": str(a + b), "meta": {"op": op}}
    values = rng.sample(range(10), rng.randint(3, 4))
    listed = ",".join(map(str, values))
    question = "Most?" if op == "largest" else "Fewest?"
    prompt = f"Bags of {listed} {item}. {question}"
    answer = max(values) if op == "largest" else min(values)
    return {"prompt": prompt, "answer": str(answer), "meta": {"op": op}}


ODD_POOLS = ("0123456789", "abcdefghij")


def _choice_item(rng: random.Random) -> dict:
    """Four options, one right: the largest or smallest of four digits, or the odd one out of
    four symbols (three equal, one different). The answer is the chosen option itself."""
    kind = rng.choice(("largest", "smallest", "odd"))
    if kind == "odd":
        pool = rng.choice(ODD_POOLS)
        common, odd = rng.sample(pool, 2)
        choices = [common] * 4
        label = rng.randrange(4)
        choices[label] = odd
        question = "Odd one?"
    else:
        digits = rng.sample(range(10), 4)
        choices = [str(d) for d in digits]
        label = digits.index(max(digits) if kind == "largest" else min(digits))
        question = "Largest?" if kind == "largest" else "Smallest?"
    return {
        "prompt": f"{question} {' '.join(choices)}",
        "answer": choices[label],
        "choices": tuple(choices),
        "label": label,
        "meta": {"op": kind},
    }


CODE_OPS: dict[str, Callable[[list[int]], object]] = {
    "sorted(x)": sorted,
    "x[::-1]": lambda x: x[::-1],
    "max(x)": max,
    "min(x)": min,
    "sum(x)": sum,
    "x[0]": lambda x: x[0],
}


def _show(value: object) -> str:
    return repr(value).replace(" ", "")


def _random_list(rng: random.Random) -> list[int]:
    return [rng.randint(0, 9) for _ in range(rng.randint(2, 4))]


def _code_item(rng: random.Random) -> dict:
    expr = rng.choice(list(CODE_OPS))
    fn = CODE_OPS[expr]
    # Two shown examples that tell this operation apart from every other one.
    while True:
        shown = [_random_list(rng) for _ in range(2)]
        rivals = [f for e, f in CODE_OPS.items() if e != expr]
        if all(any(f(list(x)) != fn(list(x)) for x in shown) for f in rivals):
            break
    shown_text = ";".join(f"f({_show(x)})={_show(fn(list(x)))}" for x in shown)
    hidden = [_random_list(rng) for _ in range(3)]
    tests = "\n".join(f"assert f({_show(x)}) == {_show(fn(list(x)))}" for x in hidden)
    prompt = f"{shown_text}; def f(x): return"
    return {"prompt": prompt, "answer": " " + expr, "tests": tests, "entry_point": "f"}


SYNTHETIC_TASKS: dict[str, SyntheticFamily] = {
    f.name: f
    for f in (
        SyntheticFamily("synth_math", "math", "word problems with a numeric answer", _math_item),
        SyntheticFamily("synth_choice", "commonsense", "4-way multiple choice", _choice_item),
        SyntheticFamily("synth_code", "code", "one-line Python from I/O examples", _code_item),
    )
}


def split_of(prompt: str) -> str:
    """The split a prompt belongs to, fixed by its text: 10% test, 10% validation, 80% train."""
    bucket = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % 10
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


def draw_split(family: SyntheticFamily, name: str, split: str, n: int, seed: int) -> list[Example]:
    """``n`` distinct examples of one family's split, deterministic for (name, split, n, seed).
    (:func:`tasks.synthetic_tasks.make_split` finds the family by name, unseen ones included.)"""
    if split not in SPLITS:
        raise BenchError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    rng = random.Random(f"{name}/{split}/{seed}")
    seen: set[str] = set()
    examples: list[Example] = []
    attempts = 0
    while len(examples) < n:
        attempts += 1
        if attempts > 200 * n + 10_000:
            raise BenchError(f"{name}: could not draw {n} distinct {split} examples")
        item = family.make(rng)
        if item["prompt"] in seen or split_of(item["prompt"]) != split:
            continue
        seen.add(item["prompt"])
        examples.append(
            Example(
                id=f"{name}-{split}-{seed}-{len(examples)}",
                prompt=item["prompt"],
                target=item["answer"],
                choices=item.get("choices"),
                label=item.get("label"),
                answer=item["answer"].strip(),
                tests=item.get("tests"),
                entry_point=item.get("entry_point"),
                meta={"family": name, "suite": family.suite, **item.get("meta", {})},
            )
        )
    return examples


def pretraining_examples(n_per_family: int, seed: int) -> list[Example]:
    """Examples for pretraining the tiny base: train-split prompts only, never validation or test,
    and only the in-distribution families (never ``tasks.unseen``)."""
    return [
        ex
        for name in SYNTHETIC_TASKS
        for ex in draw_split(SYNTHETIC_TASKS[name], name, "train", n_per_family, 10_000 + seed)
    ]
