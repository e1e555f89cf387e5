"""The single scoring entry the runner and `bench score` both call.

    prompts = generation_prompts(spec, data.test.examples, template="alpaca")
    outputs = sampler(prompts)                      # the model side (not here)
    score = score_generations(spec, data.test.examples, outputs, follows="bench")

    requests = loglik_requests(spec, examples)      # per example: [(context, continuation), ...]
    logliks = likelihood(requests)                  # per example: [ll per choice]
    score = score_loglik(spec, examples, logliks)

Generative scoring extracts the answer the task's way under the protocol followed
(``follows``, `tasks/protocols.py`), and names the rule it used (`TaskScore.answer_rule`); code tasks run
every sample in the sandbox in parallel and report pass@1 and unbiased pass@k from n samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.ground.errors import BenchError
from tasks import prompts, scoring
from tasks.base import Example, TaskSpec
from tasks.protocols import (
    CHOICE_CASE,
    LETTER_FIRST_CAPITAL,
    NUMBER_LAST,
    get_protocol,
)
from tasks.registry import get_task
from tasks.sandbox import ExecResult, Limits, run_programs

Output = str | Sequence[str]
PASS_KS = (5, 10, 100)  # reported when n allows, plus pass@n


@dataclass
class TaskScore:
    """One task's score: the primary metric, its value over `n` examples, per-example rows
    (id, prediction, extracted, correct, ...) and further metrics (`acc_norm`, `pass@k`)."""

    task: str
    protocol: str
    metric: str
    value: float
    n: int
    per_example: list[dict[str, Any]]
    extra: dict[str, float] = field(default_factory=dict)
    # How answers were read (tasks/protocols.py names); None where no rule applies (code, loglik).
    answer_rule: str | None = None

    @property
    def metrics(self) -> dict[str, float]:
        return {self.metric: self.value, **self.extra}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _spec(task: str | TaskSpec) -> TaskSpec:
    return task if isinstance(task, TaskSpec) else get_task(task)


def _check_protocol(spec: TaskSpec, protocol: str) -> None:
    if protocol not in spec.protocols:
        raise BenchError(
            f"task {spec.name!r} has no protocol {protocol!r}; valid: {', '.join(spec.protocols)}"
        )


def generation_prompts(
    task: str | TaskSpec,
    examples: Sequence[Example],
    template: str = "alpaca",
    chat_fn: prompts.ChatFn | None = None,
) -> list[str]:
    """The prompt text for each example (code tasks: use template "plain" for base models so the
    model continues the function; instruction models may answer with a whole function, which the
    code extraction accepts too)."""
    _spec(task)
    return [prompts.format_prompt(ex, template, chat_fn) for ex in examples]


def loglik_requests(
    task: str | TaskSpec,
    examples: Sequence[Example],
    template: str = "plain",
    chat_fn: prompts.ChatFn | None = None,
) -> list[list[tuple[str, str]]]:
    """Per example, one (context, continuation) pair per choice."""
    spec = _spec(task)
    _check_protocol(spec, "loglik")
    return [prompts.loglik_requests(ex, template, chat_fn) for ex in examples]


def answer_rule(spec: TaskSpec, follows: str = "bench") -> str | None:
    """The name of the rule that reads answers of ``spec`` under the protocol ``follows``
    (choice, letter and number tasks; None for the others, whose rule no protocol changes)."""
    protocol = get_protocol(follows)
    if spec.kind == "choice":
        return protocol.choice_rule
    if spec.kind == "letter":
        return protocol.letter_rule
    if spec.kind == "number":
        return (
            NUMBER_LAST if spec.meta.get("number_rule") == "last" else protocol.stated_number_rule
        )
    return None


def extract_answer(
    spec: TaskSpec, example: Example, output: str, follows: str = "bench"
) -> tuple[Any, bool]:
    """(extracted answer, correct) for one generated output of a non-code task."""
    rule = answer_rule(spec, follows)
    if spec.kind == "choice":
        any_case = rule != CHOICE_CASE
        got = scoring.first_match(output, spec.pattern or "", any_case=any_case)
        gold = (example.answer or "").lower() if any_case else example.answer
        return got, got is not None and got == gold
    if spec.kind == "number":
        last = rule == NUMBER_LAST
        num = scoring.last_number(output) if last else scoring.stated_number(output)
        return num, scoring.numbers_match(num, scoring.parse_number(example.answer))
    if spec.kind == "boxed":
        boxed = scoring.last_boxed(output)
        return boxed, scoring.math_equal(boxed, example.answer)
    if spec.kind == "word":
        word = scoring.first_word(output)
        return word, word is not None and word == (example.answer or "").lower()
    if spec.kind == "letter":
        letters = spec.meta.get("letters") or "ABCD"
        if rule == LETTER_FIRST_CAPITAL:
            letter = scoring.first_capital(output, letters)
        else:
            letter = scoring.first_letter(output, letters)
        return letter, letter is not None and letter == example.answer
    raise BenchError(f"task {spec.name!r}: no answer extraction for kind {spec.kind!r}")


def _samples(output: Output, example: Example) -> list[str]:
    if isinstance(output, str):
        return [output]
    samples = [str(s) for s in output]
    if not samples:
        raise BenchError(f"example {example.id!r}: empty list of outputs")
    return samples


def score_generations(
    task: str | TaskSpec,
    examples: Sequence[Example],
    outputs: Sequence[Output],
    *,
    limits: Limits | None = None,
    workers: int | None = None,
    follows: str = "bench",
) -> TaskScore:
    """Score generated outputs (one string, or a list of n samples, per example), reading
    answers the way the protocol ``follows`` does (tasks/protocols.py)."""
    spec = _spec(task)
    _check_protocol(spec, "gen")
    if len(outputs) != len(examples):
        raise BenchError(f"{spec.name}: {len(outputs)} outputs for {len(examples)} examples")
    if not examples:
        raise BenchError(f"{spec.name}: nothing to score")
    samples = [_samples(o, ex) for o, ex in zip(outputs, examples, strict=True)]
    if spec.kind == "code":
        return _score_code(spec, list(examples), samples, limits, workers)
    rows, first, mean = [], 0.0, 0.0
    for ex, outs in zip(examples, samples, strict=True):
        judged = [extract_answer(spec, ex, o, follows) for o in outs]
        first += judged[0][1]
        mean += sum(c for _, c in judged) / len(judged)
        rows.append(
            {
                "id": ex.id,
                "prediction": outs[0],
                "extracted": judged[0][0],
                "correct": bool(judged[0][1]),
                "gold": ex.answer,
                **(
                    {"n_samples": len(outs), "n_correct": sum(c for _, c in judged)}
                    if len(outs) > 1
                    else {}
                ),
            }
        )
    n = len(examples)
    extra = {"accuracy_mean_over_samples": mean / n} if any(len(s) > 1 for s in samples) else {}
    rule = answer_rule(spec, follows)
    return TaskScore(spec.name, "gen", spec.metric, first / n, n, rows, extra, rule)


def _score_code(
    spec: TaskSpec,
    examples: list[Example],
    samples: list[list[str]],
    limits: Limits | None,
    workers: int | None,
) -> TaskScore:
    assert spec.program is not None
    codes = [
        [scoring.extract_code(o, spec.code_mode, ex.entry_point) for o in outs]
        for ex, outs in zip(examples, samples, strict=True)
    ]
    programs = [spec.program(ex, c) for ex, cs in zip(examples, codes, strict=True) for c in cs]
    results = run_programs(programs, limits, workers)
    rows: list[dict[str, Any]] = []
    at = 0
    passed_counts = []
    for ex, outs, cs in zip(examples, samples, codes, strict=True):
        res: list[ExecResult] = results[at : at + len(outs)]
        at += len(outs)
        c = sum(r.passed for r in res)
        passed_counts.append((len(outs), c))
        rows.append(
            {
                "id": ex.id,
                "prediction": outs[0],
                "extracted": cs[0],
                "correct": res[0].passed,
                "status": res[0].status,
                "stderr": res[0].stderr_tail[-500:],
                "n_samples": len(outs),
                "n_passed": c,
            }
        )
    n = len(examples)
    value = sum(c / m for m, c in passed_counts) / n  # pass@1 estimate: mean of c/n
    min_n = min(m for m, _ in passed_counts)
    extra = {
        f"pass@{k}": sum(scoring.pass_at_k(m, c, k) for m, c in passed_counts) / n
        for k in sorted({*PASS_KS, min_n})
        if 1 < k <= min_n
    }
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    extra.update({f"programs_{s}": float(v) for s, v in sorted(statuses.items())})
    return TaskScore(spec.name, "gen", "pass@1", value, n, rows, extra)


def score_loglik(
    task: str | TaskSpec,
    examples: Sequence[Example],
    choice_logliks: Sequence[Sequence[float]],
) -> TaskScore:
    """acc (argmax log-likelihood) and acc_norm (argmax log-likelihood per character of the
    choice text, as lm-eval) from per-choice log-likelihoods."""
    spec = _spec(task)
    _check_protocol(spec, "loglik")
    if len(choice_logliks) != len(examples):
        raise BenchError(
            f"{spec.name}: {len(choice_logliks)} rows of log-likelihoods for {len(examples)} examples"
        )
    if not examples:
        raise BenchError(f"{spec.name}: nothing to score")
    rows, acc, acc_norm = [], 0, 0
    for ex, lls in zip(examples, choice_logliks, strict=True):
        # lm-eval normalises by the characters of the continuation (the choice text; under
        # WinoGrande's partial scoring the shared rest of the sentence, so acc_norm == acc).
        texts = [cont.lstrip() for _, cont in prompts.loglik_requests(ex, "plain")]
        try:
            pred, pred_norm = scoring.mc_predictions([float(x) for x in lls], texts)
        except ValueError as e:
            raise BenchError(f"{spec.name}: example {ex.id!r}: {e}") from None
        ok, ok_norm = pred == ex.label, pred_norm == ex.label
        acc += ok
        acc_norm += ok_norm
        rows.append(
            {
                "id": ex.id,
                "prediction": pred,
                "extracted": (ex.choices or ())[pred],
                "correct": bool(ok),
                "correct_norm": bool(ok_norm),
                "gold": ex.label,
                "logliks": [float(x) for x in lls],
            }
        )
    n = len(examples)
    return TaskScore(spec.name, "loglik", "acc", acc / n, n, rows, {"acc_norm": acc_norm / n})
