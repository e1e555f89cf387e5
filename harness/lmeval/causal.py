"""lm-eval requests on an autoregressive base (tiny-ar, Llama, Qwen2; with or without an adapter):
the causal model's own exact answers instead of the diffusion estimators of
:mod:`harness.lmeval.model`.

- ``loglikelihood``: the exact sum of the continuation's token log probabilities given the context
  (one teacher-forced forward, :func:`harness.processes.causal.likelihood.causal_loglikelihood`'s rule), and
  ``is_greedy`` exactly: every continuation token is the argmax of its position's logits (the same
  forward). An empty context is scored after the tokenizer's BOS, or after EOS for a tokenizer
  without one (tiny-ar's character tokenizer), as lm-eval's own causal models do.
- ``loglikelihood_rolling``: the same over windows of the text (``rolling_windows``), the first
  window after that BOS / EOS, so every token is scored exactly once.
- ``generate_until``: batched greedy decoding with a KV cache
  (:func:`harness.processes.causal.decode.greedy_generate`), ``max_gen_toks`` new tokens (default the
  ``gen_length`` model argument), stopped at EOS and cut at the task's ``until`` strings. The
  diffusion sampler's arguments (steps, block_length, remasking, cache, ...) do not apply.

With an L2D adapter every forward integrates its flow (``l2d_steps`` intervals of ``solver``,
model arguments, defaults as ``eval.l2d_steps`` / ``eval.solver``), seeded by ``seed``; the scores
carry the sampler label ``flow=<solver>:<steps>`` as bench's own evaluation does.

:class:`harness.lmeval.model.BenchDLLM` builds one :class:`CausalRequests` for an autoregressive
model and hands it the three request types.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch

from harness.config.cell import EvalConfig
from harness.lmeval.text import _stop_strings, cut_at_stop, rolling_windows
from harness.models.tokenizer import keep_tail
from harness.processes.causal.decode import greedy_generate
from harness.processes.causal.evaluate import flow_settings, label_for
from harness.processes.masked.sampling import SamplingStats


class CausalRequests:
    """The three lm-eval request types for ``lm`` (a ``harness.lmeval.BenchDLLM`` whose model is
    autoregressive); see the module docstring."""

    def __init__(self, lm) -> None:
        self.lm = lm
        args = lm.args
        self.eval_config = EvalConfig(l2d_steps=args["l2d_steps"], solver=args["solver"])

    @property
    def model(self):
        return self.lm.dlm

    def settings(self):
        """The flow's settings for one request (L2D; None for every other model), seeded the
        same way every time so a request's score does not depend on the ones before it."""
        return flow_settings(self.model, self.eval_config, self.lm.seed)

    @property
    def label(self) -> str:
        return label_for(self.eval_config, self.settings())

    def _start(self) -> list[int]:
        """What an empty context is scored after: the BOS, else EOS."""
        tok = self.model.tokenizer
        return list(tok.bos_prefix) or [tok.eos_token_id]

    @torch.no_grad()
    def score(self, prefix: Sequence[int], target: Sequence[int]) -> tuple[float, bool]:
        """(exact log-likelihood of ``target`` after ``prefix``, is it the greedy continuation)."""
        from harness.ground.device import autocast_for

        if not target:
            return 0.0, True
        prefix = list(prefix) or self._start()
        model = self.model
        ids = torch.tensor([prefix + list(target)], dtype=torch.long, device=model.device)
        with autocast_for(model.device):
            logits = model.continuation_logits(
                ids, torch.ones_like(ids), len(prefix), self.settings()
            )
        logp = torch.log_softmax(logits.float(), dim=-1)
        gold = ids[:, len(prefix) :]
        total = float(logp.gather(-1, gold[..., None]).sum())
        return total, bool((logp.argmax(dim=-1) == gold).all())

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        lm, out = self.lm, []
        for request in requests:
            context, continuation = request.args[:2]
            prefix, target = lm._fit(*lm._encode_pair(context, continuation))
            value = self.score(prefix, target)
            lm.cache_hook.add_partial("loglikelihood", (context, continuation), value)
            out.append(value)
        return out

    def loglikelihood_rolling(self, requests) -> list[float]:
        lm, out = self.lm, []
        start = self._start()
        for request in requests:
            (text,) = request.args[:1]
            ids = self.model.tokenizer.encode(text)
            windows = rolling_windows(ids, lm.max_length - len(start))
            # only the first window starts the text; a later one's context is the text before it
            total = sum(self.score(p if i else start, t)[0] for i, (p, t) in enumerate(windows))
            lm.cache_hook.add_partial("loglikelihood_rolling", (text,), total)
            out.append(total)
        return out

    def generate_until(self, requests) -> list[str]:
        from harness.ground.device import autocast_for

        lm, tok = self.lm, self.model.tokenizer
        results: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            kwargs = request.args[1] if len(request.args) > 1 else {}
            key = json.dumps([request.task_name or "?", kwargs], sort_keys=True, default=str)
            groups.setdefault(key, []).append(i)  # a batch never mixes tasks or settings
        for key, indices in groups.items():
            name, kwargs = json.loads(key)
            wanted = kwargs.get("max_gen_toks")
            new_tokens = lm.args["gen_length"] if wanted is None else int(wanted)
            until = _stop_strings(kwargs.get("until"))
            room = max(1, lm.max_length - new_tokens)
            prompts = {
                i: keep_tail(tok.encode_prompt(requests[i].args[0]), room, tok.bos_prefix)
                or self._start()
                for i in indices
            }
            order = sorted(indices, key=lambda i: len(prompts[i]))  # similar lengths pad less
            stats = lm.sampling.setdefault(name, SamplingStats())
            for begin in range(0, len(order), lm.batch_size):
                batch = order[begin : begin + lm.batch_size]
                with autocast_for(self.model.device):
                    outputs = greedy_generate(
                        self.model, [prompts[i] for i in batch], new_tokens, self.settings(), stats
                    )
                for i, ids in zip(batch, outputs, strict=True):
                    text = cut_at_stop(tok.decode(ids), until)
                    lm.cache_hook.add_partial("generate_until", requests[i].args, text)
                    results[i] = text
        return results  # type: ignore[return-value]
