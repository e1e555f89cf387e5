"""Synthetic families the tiny base has NEVER seen: the demo's headroom tasks.

The in-distribution families of ``tasks/synthetic.py`` are in the tiny base's pretraining mix, so
the base already scores 40-50% on them and fine-tuning adds a few points at most: a demo on them
cannot tell methods apart. These families are new skills built from the same characters (one per
suite), so the base starts near zero (or near chance for the choice task) and a short fine-tuning
run has something to learn:

- ``synth_math_unseen``: "one more than the largest" / "one less than the smallest" of a few
  digits (a numeric answer; the base knows largest/smallest but not the offset);
- ``synth_choice_vowel``: pick the only vowel among four letters (4-way choice; the demo's);
- ``synth_choice_unseen``: pick the only even (or the only odd) digit of four (4-way choice), a
  harder variant: the demo budget does not teach it (about +12 points over the base);
- ``synth_code_slice``: slicing and indexing asked for in words, HumanEval's shape (a description,
  then the code): "First 2." -> ``x[:2]``, "Last 2." -> ``x[-2:]``, "Drop 2." -> ``x[2:]``,
  "Item 2." -> ``x[2]`` for k = 1..3, with one I/O example; scored by hidden asserts in the
  sandbox (the demo's code family: the base scores 0, LoRA about 55% with the family's budget);
- ``synth_code_unseen``: one-line Python from I/O examples alone with operations absent from the
  mix (``x[-1]``, ``len(x)``, ``x[1]``), a harder variant: telling x[1] from x[-1] by their
  outputs is a rule the demo budget does not teach (LoRA collapses to one expression, +21 points).

Why the choice families score BELOW chance before training: they are scored by generation (the
tiny model's default protocol for every synthetic task), and the base, asked a question it never
saw, writes a plausible character that is often not one of the four options (on parity, 111 of
200 answers are no option at all; on the vowel family 265 of 300, half of them a digit, a third
the letter "m"). Chance (25%) is the floor only under log-likelihood scoring of the options (parity: 20%
there). So the learnable part is twofold: answer with one of the listed options, and find the one
the rule picks. Parity needs a feature of digits the base never used; the demo budget does not
teach it. Vowel-ness is a fixed set of five letters; LoRA learns it when it gets the steps
(``TINY_DEFAULTS``: the family's own training budget for the tiny model): 1200 updates of 16. With
fewer (600 of 16, or 300 of 32 at the synthetic lr) a base pretrained with seed 1 learned only to
answer SOME vowel (21-39%, mostly "u"): how fast a rule is learned depends on the base (README,
"What to expect from the tiny model").

They are NOT in ``SYNTHETIC_TASKS`` and ``pretraining_examples`` never draws them (a test checks
it), so adding them leaves the cached tiny base valid.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from tasks.synthetic import ITEMS, SyntheticFamily, _random_list, _show


def _math_unseen_item(rng: random.Random) -> dict:
    op = rng.choice(("most_plus", "fewest_minus"))
    item = rng.choice(ITEMS)
    values = rng.sample(range(1, 10), rng.randint(3, 4))
    listed = ",".join(map(str, values))
    if op == "most_plus":
        prompt, answer = f"Bags of {listed} {item}. One more than most?", max(values) + 1
    else:
        prompt, answer = f"Bags of {listed} {item}. One less than fewest?", min(values) - 1
    return {"prompt": prompt, "answer": str(answer), "meta": {"op": op}}


def _choice_unseen_item(rng: random.Random) -> dict:
    """Four digits, exactly one of them even (or exactly one odd); that one is the answer. The
    other three may repeat. The base has never seen parity."""
    kind = rng.choice(("even", "odd"))
    evens, odds = [0, 2, 4, 6, 8], [1, 3, 5, 7, 9]
    single, rest = (evens, odds) if kind == "even" else (odds, evens)
    digits = [rng.choice(single), *(rng.choice(rest) for _ in range(3))]
    rng.shuffle(digits)
    choices = tuple(str(d) for d in digits)
    label = next(i for i, d in enumerate(digits) if d in single)
    question = "Only even?" if kind == "even" else "Only odd?"
    return {
        "prompt": f"{question} {' '.join(choices)}",
        "answer": choices[label],
        "choices": choices,
        "label": label,
        "meta": {"op": kind},
    }


VOWELS = "aeiou"
CONSONANTS = "bcdfghjklmnpqrstvwxyz"


def _choice_vowel_item(rng: random.Random) -> dict:
    """Four distinct letters, exactly one a vowel; that one is the answer. The pretraining mix
    never asks about vowels (its letter lists are three equal letters and one other)."""
    letters = [rng.choice(VOWELS), *rng.sample(CONSONANTS, 3)]
    rng.shuffle(letters)
    label = next(i for i, c in enumerate(letters) if c in VOWELS)
    return {
        "prompt": f"Vowel? {' '.join(letters)}",
        "answer": letters[label],
        "choices": tuple(letters),
        "label": label,
        "meta": {"op": "vowel"},
    }


# Each family's own defaults for the tiny model (applied by the grid before any --set or
# --limit; the same for every method). The demo's three families train with more, smaller updates
# at twice the synthetic lr (batches of 16 at lr 4e-3): for the same compute this teaches them
# faster than the synthetic default (80 updates of 32 at 2e-3), and it teaches them on two bases
# pretrained with different seeds, where the default left one base at +21 on the vowel family
# (README, "What to expect from the tiny model"). The scored sets are sized for a paired
# MDE <= 5 points with 2 seeds at the discordance the demo's methods show (up to about 0.3).
_DEMO_RECIPE = {"batch_size": 16, "lr": 4e-3}
TINY_DEFAULTS: dict[str, dict[str, dict]] = {
    # seed-0 base: 62.0 / 63.8 (the default recipe at 200 updates: 57.8 / 63.4); seed-1 base:
    # 62.6 / 45.6 (42.4 / 30.0)
    "synth_math_unseen": {
        "train": {"steps": 400, "val_every": 200, **_DEMO_RECIPE},
        "eval": {"limit": 500},
    },
    # a choice row is 17 tokens, so 1200 updates of 16 cost about twice 300 of 32; seed-1 base:
    # 100 / 98 (600 updates: 22 / 39; the default recipe at 300: 22 / 21); seed-0 base: 95-98 at
    # 400 (the default recipe at 300: 80-86)
    "synth_choice_vowel": {
        "train": {"steps": 1200, "val_every": 400, **_DEMO_RECIPE},
        "eval": {"limit": 500},
    },
    "synth_code_unseen": {"eval": {"limit": 300}},
    # 80 updates of 32 leave LoRA at 16%; 400 of 16 at lr 4e-3 reach 54-56% (two seeds) for the
    # compute of 200 of 32 (33-36% at lr 4e-3); seed-1 base: 65 / 42
    "synth_code_slice": {
        "train": {"steps": 400, "val_every": 200, **_DEMO_RECIPE},
        "eval": {"limit": 500},
    },
}
TEST_SIZES = {
    "synth_math_unseen": 500,
    "synth_choice_vowel": 500,
    "synth_choice_unseen": 400,  # about 500 distinct test prompts exist
    "synth_code_unseen": 400,
    "synth_code_slice": 600,
}


UNSEEN_CODE_OPS: dict[str, Callable[[list[int]], object]] = {
    "x[-1]": lambda x: x[-1],
    "len(x)": len,
    "x[1]": lambda x: x[1],
}


def _code_unseen_item(rng: random.Random) -> dict:
    expr = rng.choice(list(UNSEEN_CODE_OPS))
    fn = UNSEEN_CODE_OPS[expr]
    rivals = [f for e, f in UNSEEN_CODE_OPS.items() if e != expr]
    while True:  # two shown examples that tell this operation apart from the other new ones
        shown = [_random_list(rng) for _ in range(2)]
        if all(any(f(list(x)) != fn(list(x)) for x in shown) for f in rivals):
            break
    shown_text = ";".join(f"f({_show(x)})={_show(fn(list(x)))}" for x in shown)
    hidden = [_random_list(rng) for _ in range(3)]
    tests = "\n".join(f"assert f({_show(x)}) == {_show(fn(list(x)))}" for x in hidden)
    return {
        "prompt": f"{shown_text}; def f(x): return",
        "answer": " " + expr,
        "tests": tests,
        "entry_point": "f",
        "meta": {"op": expr},
    }


# Slicing and indexing, asked for in words (the HumanEval shape: a description, then the code).
# Neither the words nor these expressions are in the pretraining mix (its only slice is x[::-1],
# its only index x[0]).
SLICE_OPS: dict[str, tuple[str, Callable[[list[int], int], object]]] = {
    "First": ("x[:{k}]", lambda x, k: x[:k]),
    "Last": ("x[-{k}:]", lambda x, k: x[-k:]),
    "Drop": ("x[{k}:]", lambda x, k: x[k:]),
    "Item": ("x[{k}]", lambda x, k: x[k]),
}


def _long_list(rng: random.Random) -> list[int]:
    return [rng.randint(0, 9) for _ in range(rng.randint(4, 6))]


def _code_slice_item(rng: random.Random) -> dict:
    """ "First 2." -> ``x[:2]``: four slicing/indexing words times k = 1..3, with one I/O example
    (the prompt's variety, and a second cue). Hidden asserts on lists of 4-6 digits, so every k
    is in range; a wrong word or a wrong k fails them (more lists are added until it does)."""
    word = rng.choice(list(SLICE_OPS))
    k = rng.randint(1, 3)
    template, fn = SLICE_OPS[word]
    shown = _long_list(rng)
    hidden = [_long_list(rng) for _ in range(3)]
    # On lists of one length x[-2:] is x[2:], and digits repeat: add lists until every other
    # expression fails one. Drawn from a generator of their own (seeded by the lists), so the
    # family's stream, and every item that needed none, stay as they were.
    extra = random.Random(repr(hidden))
    while any(
        all(other(x, j) == fn(x, k) for x in hidden)
        for w, (_, other) in SLICE_OPS.items()
        for j in (1, 2, 3)
        if (w, j) != (word, k)
    ):
        hidden.append(_long_list(extra))
    tests = "\n".join(f"assert f({_show(x)}) == {_show(fn(x, k))}" for x in hidden)
    return {
        "prompt": f"{word} {k}. f({_show(shown)})={_show(fn(shown, k))}; def f(x): return",
        "answer": " " + template.format(k=k),
        "tests": tests,
        "entry_point": "f",
        "meta": {"op": word.lower()},
    }


UNSEEN_TASKS: dict[str, SyntheticFamily] = {
    f.name: f
    for f in (
        SyntheticFamily(
            "synth_math_unseen", "math", "largest + 1 / smallest - 1 (unseen)", _math_unseen_item
        ),
        SyntheticFamily(
            "synth_choice_vowel",
            "commonsense",
            "the only vowel of four letters (unseen)",
            _choice_vowel_item,
        ),
        SyntheticFamily(
            "synth_choice_unseen",
            "commonsense",
            "the only even/odd digit (unseen)",
            _choice_unseen_item,
        ),
        SyntheticFamily(
            "synth_code_unseen", "code", "x[-1], len(x), x[1] from I/O (unseen)", _code_unseen_item
        ),
        SyntheticFamily(
            "synth_code_slice",
            "code",
            "slicing/indexing from words: First/Last/Drop/Item k (unseen)",
            _code_slice_item,
        ),
    )
}

CHANCE = {
    "synth_math_unseen": 0.10,
    "synth_choice_vowel": 0.25,
    "synth_choice_unseen": 0.25,
    "synth_code_unseen": 1 / 3,
    "synth_code_slice": 0.0,
}
