"""Prompt formats for training and evaluation.

- "alpaca": the LLM-Adapters instruction template (used by LLM-Adapters, DoRA, NaRA);
- "plain": the task text alone (base models, code completion, lm-eval style log-likelihood);
- "chat": the model's own chat template, through `chat_fn(messages) -> str` which the model side
  builds from its tokenizer (e.g. ``tok.apply_chat_template(m, tokenize=False,
  add_generation_prompt=True)``).

The instruction is the example's `prompt` followed by its answer-format hint
(`meta["format_hint"]`, e.g. "Answer format: true/false").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from harness.ground.errors import BenchError
from tasks.base import Example

Template = Literal["alpaca", "plain", "chat"]
ChatFn = Callable[[list[dict[str, str]]], str]
TEMPLATES = ("alpaca", "plain", "chat")

ALPACA = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)


def instruction(example: Example, hint: bool = True) -> str:
    """The instruction text: the task prompt plus its answer-format hint."""
    fmt = example.meta.get("format_hint", "") if hint else ""
    return f"{example.prompt}\n\n{fmt}" if fmt else example.prompt


def wrap(text: str, template: str = "alpaca", chat_fn: ChatFn | None = None) -> str:
    """Put an instruction text into a template."""
    if template == "alpaca":
        return ALPACA.format(instruction=text)
    if template == "plain":
        return text
    if template == "chat":
        if chat_fn is None:
            raise BenchError("template 'chat' needs the model's chat function (chat_fn)")
        return chat_fn([{"role": "user", "content": text}])
    raise BenchError(f"unknown prompt template {template!r}; valid: {', '.join(TEMPLATES)}")


def format_prompt(example: Example, template: str = "alpaca", chat_fn: ChatFn | None = None) -> str:
    """The text a model is given to generate the answer of `example`."""
    return wrap(instruction(example), template, chat_fn)


def sft_pair(
    example: Example, template: str = "alpaca", chat_fn: ChatFn | None = None
) -> tuple[str, str]:
    """(prompt, response) for supervised fine-tuning: the loss goes on the response only."""
    return format_prompt(example, template, chat_fn), example.target


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
        raise BenchError(f"example {example.id!r} has no choices: log-likelihood needs choices")
    contexts = example.meta.get("loglik_contexts")
    if contexts:
        cont = example.meta["loglik_continuation"]
        return [(wrap(c, template, chat_fn), cont) for c in contexts]
    text = example.meta.get("loglik_prompt") or instruction(example)
    context = wrap(text, template, chat_fn)
    sep = "" if context.endswith((" ", "\n")) else " "
    return [(context, sep + c) for c in example.choices]
