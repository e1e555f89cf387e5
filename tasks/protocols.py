"""Protocols: the published evaluation a cell follows, by name, and what that name fixes.

A protocol is one recorded choice (``eval.follows`` in the cell config, shown by the report) that
fixes, for the suites it speaks for, the prompt template (training and evaluation) and the rule
that reads an answer out of a generated text. Where bench deliberately differs from a reference
(a stricter letter rule, case-insensitive choice matching), the difference is another protocol or
another template with its own name, never a silent change. ``docs/protocols.md`` lists what is
equal to each reference and what differs.

- ``bench``: the default. bench's clean Alpaca template (or ``eval.template``), choice words
  matched in any case, AQuA's letter only where it stands alone, GSM8K by its stated answer
  ("#### N" / "The answer is N", else the last number).
- ``llm-adapters``: the commonsense and math protocol of LLM-Adapters (and so of DoRA and NaRA):
  its Alpaca strings byte for byte (``finetune.py`` for training, ``evaluate.py`` for
  evaluation), choice words matched case-sensitively, the first capital A-E anywhere for AQuA,
  the last number for every math set including GSM8K.
- ``llada`` / ``lm-eval``: GSM8K by its stated answer (the convention of LLaDA's evaluation and
  of lm-eval's GSM8K), the rest as ``bench``.

Test files are not a protocol setting: a local file always wins (``$BENCH_DATA_DIR/<task>/`` or
LLM-Adapters' own ``$BENCH_DATA_DIR/<Name>/test.json``), and its path and hash are recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.ground.errors import BenchError

# Answer rules, by the name recorded with every generative score (``Score.answer_rule``).
CHOICE_CASE = "first-match"  # LLM-Adapters: the first match of the task's words, case-sensitive
CHOICE_ANY_CASE = "first-match-any-case"  # bench: the same in any case ("Answer2" counts)
LETTER_FIRST_CAPITAL = "first-capital"  # LLM-Adapters: the first A-E anywhere ("[B]ill's")
LETTER_STANDALONE = "standalone-letter"  # bench: the first A-E that is not part of a word
NUMBER_LAST = "last-number"  # LLM-Adapters: the last number, correct within 1e-3
NUMBER_STATED = "stated-number"  # LLaDA / lm-eval: "#### N" or "The answer is N", else the last
ANSWER_RULES = (
    CHOICE_CASE,
    CHOICE_ANY_CASE,
    LETTER_FIRST_CAPITAL,
    LETTER_STANDALONE,
    NUMBER_LAST,
    NUMBER_STATED,
)


@dataclass(frozen=True)
class Protocol:
    """What one protocol fixes. ``template`` None leaves the template to ``eval.template``."""

    name: str
    template: str | None
    choice_rule: str
    letter_rule: str
    # Tasks whose answer may be stated ("#### N", "The answer is N"): GSM8K. Sets that the
    # literature always scores by the last number (SVAMP, AddSub, ...) keep that rule.
    stated_number_rule: str
    description: str


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "bench",
            None,
            CHOICE_ANY_CASE,
            LETTER_STANDALONE,
            NUMBER_STATED,
            "bench's clean template and its stricter letter rule",
        ),
        Protocol(
            "llm-adapters",
            "llm-adapters",
            CHOICE_CASE,
            LETTER_FIRST_CAPITAL,
            NUMBER_LAST,
            "LLM-Adapters' prompts and answer extraction (the DoRA and NaRA tables)",
        ),
        Protocol(
            "llada",
            None,
            CHOICE_ANY_CASE,
            LETTER_STANDALONE,
            NUMBER_STATED,
            "LLaDA's evaluation: GSM8K by its stated answer",
        ),
        Protocol(
            "lm-eval",
            None,
            CHOICE_ANY_CASE,
            LETTER_STANDALONE,
            NUMBER_STATED,
            "lm-evaluation-harness conventions: GSM8K by its stated answer",
        ),
    )
}
DEFAULT = "bench"


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; one BenchError line listing the valid names otherwise."""
    if name not in PROTOCOLS:
        raise BenchError(f"unknown protocol {name!r} (eval.follows); valid: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
