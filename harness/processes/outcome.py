"""How every family's evaluation turns model outputs into an :class:`EvalOutcome`.

The masked-diffusion sampler (:mod:`harness.processes.evaluation`), DiffusionGemma's own ``generate``
(:mod:`harness.processes.uniform.evaluate`) and greedy decoding of a causal LM
(:mod:`harness.processes.causal.evaluate`) differ only in how one batch of prompts is generated and how one
continuation is scored; the prompts, the batching in length order, the progress calls, the scoring
and the outcome record are here once, so every family's records are built the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.config.cell import EvalConfig
from harness.ground.device import autocast_for
from harness.processes.masked.sampling import SamplingStats

Progress = Callable[[int, int], None] | None
# (prompt ids of one batch, the evaluation's stats) -> generated ids per prompt
GenerateBatch = Callable[[list[list[int]], SamplingStats], list[list[int]]]
# (context ids, continuation ids) -> log-likelihood of the continuation
Loglik = Callable[[list[int], list[int]], float]


@dataclass
class EvalOutcome:
    score: object  # tasks.evaluate.TaskScore
    steps: int | None
    eval_time_s: float
    # rows x denoising forwards that actually ran (a step that commits nothing runs none, a row
    # that already stopped is not in the forward): the time per sampling step divides by this
    sampling_steps: int = 0
    sampling_time_s: float = 0.0
    predictions_file: str = ""  # set by the cell when it writes the predictions
    sampler: str | None = None  # the fast-sampling label, generative protocol only
    sampling: SamplingStats | None = None

    @property
    def time_per_sampling_step_s(self) -> float | None:
        return self.sampling_time_s / self.sampling_steps if self.sampling_steps else None


def chat_fn_for(dlm):
    return lambda messages: dlm.tokenizer.chat(messages[-1]["content"])


def resolve_protocol(spec, config: EvalConfig) -> str:
    return spec.default_protocol if config.protocol == "auto" else config.protocol


def generation_outcome(
    dlm,
    spec,
    examples: Sequence,
    config: EvalConfig,
    steps: int | None,
    generate_batch: GenerateBatch,
    sampler: str,
    on_progress: Progress = None,
) -> EvalOutcome:
    """The generative protocol: prompts in batches of ``config.batch_size``, similar lengths
    together (less left padding; results are reordered back), scored by the task."""
    from tasks import evaluate as task_eval

    start = time.perf_counter()
    tok = dlm.tokenizer
    prompts = task_eval.generation_prompts(spec, examples, config.template, chat_fn_for(dlm))
    encoded = [tok.encode_prompt(p) for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    outputs: list[str] = [""] * len(encoded)
    stats = SamplingStats()
    for begin in range(0, len(order), config.batch_size):
        chunk = order[begin : begin + config.batch_size]
        with autocast_for(dlm.device):
            generated = generate_batch([encoded[i] for i in chunk], stats)
        for i, ids in zip(chunk, generated, strict=True):
            outputs[i] = tok.decode(ids)
        if on_progress is not None:
            on_progress(begin + len(chunk), len(order))
    score = task_eval.score_generations(spec, examples, outputs, follows=config.follows)
    return EvalOutcome(
        score,
        steps,
        time.perf_counter() - start,
        sampling_steps=stats.row_forwards,
        sampling_time_s=stats.time_s,
        sampler=sampler,
        sampling=stats,
    )


def loglik_outcome(
    dlm, spec, examples: Sequence, config: EvalConfig, loglik: Loglik, on_progress: Progress = None
) -> EvalOutcome:
    """The likelihood protocol: every (context, choice) pair of each request scored by ``loglik``
    and the task picks the choice."""
    from tasks import evaluate as task_eval

    start = time.perf_counter()
    tok = dlm.tokenizer
    requests = task_eval.loglik_requests(spec, examples, config.template, chat_fn_for(dlm))
    rows = []
    for n, pairs in enumerate(requests, start=1):
        with autocast_for(dlm.device):
            rows.append([loglik(tok.encode_prompt(c), tok.encode(x)) for c, x in pairs])
        if on_progress is not None:
            on_progress(n, len(requests))
    score = task_eval.score_loglik(spec, examples, rows)
    return EvalOutcome(score, None, time.perf_counter() - start)
