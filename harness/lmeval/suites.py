"""Which bench suite an lm-eval task belongs to, for its default sampler settings."""

from __future__ import annotations

_SUITE_WORDS = {
    "code": ("humaneval", "mbpp", "code"),
    "math": ("gsm8k", "math", "svamp", "aqua", "asdiv", "mawps", "addsub", "multiarith",
             "singleeq", "arith"),
}  # fmt: skip


def lm_eval_suite(task: str | None) -> str:
    """The bench suite an lm-eval task belongs to, for its default sampler settings: a bench task
    name gives its own suite; otherwise words in the name (gsm8k, math, humaneval, mbpp...) say
    math or code, and anything else is treated as commonsense (multiple choice)."""
    name = (task or "").lower()
    from tasks.registry import task_names

    if name in task_names():
        from tasks.registry import get_task

        return get_task(name).suite
    for suite, words in _SUITE_WORDS.items():
        if any(word in name for word in words):
            return suite
    return "commonsense"
