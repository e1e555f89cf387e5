"""The ``bench-dllm`` lm-eval model: a masked-diffusion LM, with or without a ``bench`` adapter.

Every forward goes through :class:`harness.models.dlm.DiffusionLM`, so noise-aware adapters
(NaRA) get each Monte Carlo sample's or denoising step's own noise level without any extra wiring.

Request types:

- ``loglikelihood``: :func:`harness.processes.masked.likelihood.estimate_loglikelihood`
  (LLaDA's Monte Carlo bound; ``mc_num``, ``mc_batch_size``, ``seed``, ``mc_masks`` and
  ``cfg_scale`` are model arguments). With the same seed a request gets LLaDA's own masks
  (``eval_llada.py``'s ``get_loglikelihood``) and its value. Differences by design: every request
  uses the same seed, so the choices of one question share their random masks (common random
  numbers), where LLaDA's lm-eval model draws each request's masks from one running stream (its
  values then depend on the request order); ``is_greedy`` is always False (LLaDA's
  ``is_check_greedy`` decodes each continuation greedily, a full denoising run per request; its
  authors recommend turning it off); the pair is encoded with the family's BOS and split where the
  context's encoding is a prefix of the whole (else the continuation is encoded on its own).
- ``loglikelihood_rolling``: the same bound over the whole text with an empty prefix; texts
  longer than ``max_length`` are scored in windows, each later window keeping as much preceding
  text as context as fits, so each token is scored exactly once.
- ``generate_until``: the batched sampler (:func:`harness.processes.masked.sampling.generate`), requests grouped
  by task and identical generation kwargs (a batch never mixes tasks, so each task's sampler
  stats are its own). ``gen_length``, ``steps``, ``block_length``, ``temperature``,
  ``noise_level`` (response | sequence, what NaRA is fed while sampling; see
  ``eval.noise_level``) and ``remasking``, ``cfg_scale``, ``schedule`` are model arguments;
  ``block_length`` defaults to bench's own evaluation's block length for the task's suite
  (:func:`harness.config.cell.default_eval` of the model and :func:`lm_eval_suite`: 8 for math and
  commonsense, 32 for code on real models). A task's ``max_gen_toks`` (or a ``gen_length`` that
  is not a multiple of the block) is rounded up to a multiple of ``block_length``, with ``steps``
  scaled to keep the model arguments' steps per token. The decoded text is cut at the first of
  the task's ``until`` strings. A task's ``temperature``/``do_sample`` are ignored.

An autoregressive base (tiny-ar, Llama, Qwen2) answers all three with its exact log-likelihood
and greedy decoding instead (:mod:`harness.lmeval.causal`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from harness.config.cell import default_eval
from harness.ground.errors import BenchError
from harness.lmeval.adapters import load_adapted
from harness.lmeval.args import DEFAULT_MAX_LENGTH, LM_ARGS, MODEL_NAME, _coerce
from harness.lmeval.causal import CausalRequests
from harness.lmeval.suites import lm_eval_suite
from harness.lmeval.text import _stop_strings, cut_at_stop, rolling_windows
from harness.models.dlm import DiffusionLM
from harness.models.tokenizer import keep_tail
from harness.processes.masked.likelihood import LikelihoodConfig, estimate_loglikelihood
from harness.processes.masked.sampling import SamplerConfig, SamplingStats, generate
from harness.processes.registry import process_of

# Request handlers of processes that answer lm-eval otherwise than the masked-diffusion default
# below (exact likelihoods and greedy decoding on causal bases).
REQUESTS_BY_PROCESS = {"causal": CausalRequests}


@register_model(MODEL_NAME)
class BenchDLLM(LM):
    """A masked-diffusion LM (plus an optional bench adapter) as an lm-eval model.

    Build it from a name (``model``: tiny, an alias, or a folder; ``adapter``: a cell or adapter
    folder) or from a loaded :class:`DiffusionLM` (``dlm=``). See the module docstring for what
    each request type computes and :data:`LM_ARGS` for the arguments and defaults.
    """

    def __init__(
        self,
        model: str | None = None,
        adapter: str | None = None,
        device: str | None = None,
        dlm: DiffusionLM | None = None,
        max_batch_size: int | None = None,  # lm-eval passes it; unused
        **kwargs: Any,
    ) -> None:
        super().__init__()
        unknown = sorted(set(kwargs) - set(LM_ARGS))
        if unknown:
            raise BenchError(
                f"unknown model argument(s) {', '.join(unknown)} for {MODEL_NAME}; valid: "
                f"model, adapter, device, {', '.join(LM_ARGS)}"
            )
        args = {name: _coerce(name, kwargs.get(name)) for name in LM_ARGS}
        # the settings are validated before the (possibly slow) model load
        self.likelihood = LikelihoodConfig(
            args["mc_num"],
            args["mc_batch_size"],
            args["seed"],
            masks=args["mc_masks"],
            cfg_scale=args["cfg_scale"],
        )
        self.sampler = SamplerConfig(
            gen_length=args["gen_length"],
            steps=args["steps"],
            # checked here with one block; the block used is resolved per task (_sampler_for)
            block_length=args["block_length"] or args["gen_length"],
            temperature=args["temperature"],
            remasking=args["remasking"],
            cfg_scale=args["cfg_scale"],
            schedule=args["schedule"],
            noise_level=args["noise_level"],
            cache=args["cache"],
            parallel=args["parallel"],
            cache_refresh=args["cache_refresh"],
            logits_eos_inf=args["logits_eos_inf"],
            confidence_eos_eot_inf=args["confidence_eos_eot_inf"],
            alg_temp=args["alg_temp"],
            eps=args["eps"],
        )
        if dlm is None:
            dlm, self.adapter_dir, self.cell_dir = load_adapted(model, adapter, device or "auto")
        else:
            self.adapter_dir, self.cell_dir = (Path(adapter) if adapter else None), None
        self.dlm = dlm
        self.dlm.eval()
        self.seed = args["seed"]
        self.batch_size = max(1, args["batch_size"])
        self.max_length = args["max_length"] or _model_max_length(dlm)
        self.args = args
        self.steps_used: dict[str, set[int]] = {}  # task name -> sampling steps used
        # task name -> what the sampler did for that task's generate_until requests (each task
        # is sampled in batches of its own, so its forwards, tokens and time are its own)
        self.sampling: dict[str, SamplingStats] = {}
        self.blocks_used: dict[str, set[int]] = {}  # task name -> block lengths used
        self._ll_cache: dict[tuple, float] = {}
        self._device = dlm.device
        # a causal base: exact likelihoods and greedy decoding instead (harness.lmeval.causal)
        self.causal = REQUESTS_BY_PROCESS.get(process_of(dlm).name, lambda _lm: None)(self)

    # -- description -----------------------------------------------------------------------
    @property
    def tokenizer_name(self) -> str:
        return "bench-" + re.sub(r"[^A-Za-z0-9_.-]+", "__", self.dlm.info.name)

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        tok = getattr(self.dlm.tokenizer, "tok", None)
        return getattr(tok, "chat_template", None) or ""

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        if self.chat_template():  # a Hugging Face tokenizer with a chat template
            return self.dlm.tokenizer.tok.apply_chat_template(
                chat_history, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        return "\n\n".join(m["content"] for m in chat_history)  # a base model: plain text

    def get_model_info(self) -> dict[str, Any]:
        info = self.dlm.info
        return {
            "bench_model": info.name,
            "bench_family": info.family,
            "bench_source": info.source,
            "bench_model_repairs": list(info.repairs),
            "bench_adapter": str(self.adapter_dir) if self.adapter_dir else None,
            "bench_args": dict(self.args),
        }

    # -- tokens ----------------------------------------------------------------------------
    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Trailing context whitespace belongs to the continuation (lm-eval's convention); the
        pair is encoded as a whole and split, so word boundaries tokenize as in running text.
        The prefix starts with the family's BOS (LLaDA, Dream), even for an empty context."""
        tok = self.dlm.tokenizer
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        prefix = tok.encode_prompt(context)
        whole = tok.encode_prompt(context + continuation)
        if whole[: len(prefix)] == prefix:
            return prefix, whole[len(prefix) :]
        return prefix, tok.encode(continuation)

    def _fit(self, prefix: list[int], target: list[int]) -> tuple[list[int], list[int]]:
        """Keep the whole target and as much of the prefix (its end) as ``max_length`` allows;
        the family's BOS always stays first."""
        bos = self.dlm.tokenizer.bos_prefix
        if len(target) > self.max_length - len(bos):
            target = target[-(self.max_length - len(bos)) :]
        room = self.max_length - len(target)
        return keep_tail(prefix, room, bos), target

    def _score(self, prefix: list[int], target: list[int]) -> float:
        if not target:
            return 0.0
        key = (tuple(prefix), tuple(target))
        if key not in self._ll_cache:
            estimate = estimate_loglikelihood(self.dlm, prefix, target, self.likelihood)
            self._ll_cache[key] = estimate.loglik
        return self._ll_cache[key]

    # -- the three request types -----------------------------------------------------------
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        if self.causal is not None:
            return self.causal.loglikelihood(requests)
        out = []
        for request in requests:
            context, continuation = request.args[:2]
            prefix, target = self._fit(*self._encode_pair(context, continuation))
            value = self._score(prefix, target)
            self.cache_hook.add_partial("loglikelihood", (context, continuation), (value, False))
            out.append((value, False))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        if self.causal is not None:
            return self.causal.loglikelihood_rolling(requests)
        out = []
        for request in requests:
            (text,) = request.args[:1]
            bos = list(self.dlm.tokenizer.bos_prefix)
            ids = self.dlm.tokenizer.encode(text)
            windows = rolling_windows(ids, self.max_length - len(bos))
            total = sum(self._score(bos + p, t) for p, t in windows)
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), total)
            out.append(total)
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        if self.causal is not None:
            return self.causal.generate_until(requests)
        results: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            kwargs = request.args[1] if len(request.args) > 1 else {}
            name = request.task_name or "?"
            # one group per task and generation settings: a batch never mixes tasks, so each
            # task's sampling stats count only its own forwards
            key = [name, kwargs, self.block_length_for(request.task_name)]
            groups.setdefault(json.dumps(key, sort_keys=True, default=str), []).append(i)
        tok = self.dlm.tokenizer
        for key, indices in groups.items():
            name, kwargs, block = json.loads(key)
            config = self._sampler_for(kwargs, block)
            until = _stop_strings(kwargs.get("until"))
            self.steps_used.setdefault(name, set()).add(config.steps)
            self.blocks_used.setdefault(name, set()).add(config.block_length)
            room = max(1, self.max_length - config.gen_length)
            prompts = {
                i: keep_tail(tok.encode_prompt(requests[i].args[0]), room, tok.bos_prefix)
                for i in indices
            }
            order = sorted(indices, key=lambda i: len(prompts[i]))  # similar lengths pad less
            stats = self.sampling.setdefault(name, SamplingStats())
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                generator = torch.Generator().manual_seed(self.seed + start)
                outputs = generate(
                    self.dlm, [prompts[i] for i in batch], config, generator, stats=stats
                )
                for i, ids in zip(batch, outputs, strict=True):
                    text = cut_at_stop(tok.decode(ids), until)
                    self.cache_hook.add_partial("generate_until", requests[i].args, text)
                    results[i] = text
        return results  # type: ignore[return-value]

    def block_length_for(self, task: str | None) -> int:
        """The ``block_length`` model argument, else bench's own block for the task's suite."""
        if self.args["block_length"]:
            return self.args["block_length"]
        return default_eval(self.dlm.info.name, lm_eval_suite(task)).block_length

    def _sampler_for(self, kwargs: dict[str, Any], block: int | None = None) -> SamplerConfig:
        base = self.sampler
        block = block or self.block_length_for(None)
        wanted = kwargs.get("max_gen_toks")
        wanted = base.gen_length if wanted is None else int(wanted)
        if base.is_dream:  # Dream's sampler has no blocks: the answer is one span
            block = wanted
        gen_length = max(block, math.ceil(wanted / block) * block)
        steps = max(gen_length // block, round(base.steps * gen_length / base.gen_length))
        return dataclasses.replace(base, gen_length=gen_length, steps=steps, block_length=block)


def _model_max_length(dlm: DiffusionLM) -> int:
    config = getattr(dlm.backbone, "config", None)
    for name in ("max_position_embeddings", "max_sequence_length", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_MAX_LENGTH
