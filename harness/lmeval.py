"""lm-evaluation-harness integration: score a dLLM, with or without a ``bench`` adapter, on any
lm-eval task, and store the scores in the cell's record.

The model class is registered with lm-eval as ``bench-dllm`` once this module is imported
(``lm_eval.simple_evaluate(model="bench-dllm", model_args={"model": "tiny", "adapter":
"runs/NAME/cells/CELL", "mc_num": 128}, ...)``; lm-eval's own command line does not import it)
and is what :func:`run_lm_eval` (``bench eval --lm-eval-tasks ...``) builds. Every forward goes
through :class:`harness.models.dlm.DiffusionLM`, so noise-aware adapters (NaRA) get each Monte Carlo
sample's or denoising step's own noise level without any extra wiring.

Request types:

- ``loglikelihood``: :func:`harness.likelihood.estimate_loglikelihood` (LLaDA's Monte Carlo
  bound; ``mc_num``, ``mc_batch_size``, ``seed`` are model arguments). Every request uses the
  same seed, so the choices of one question share their random masks (common random numbers).
  ``is_greedy`` is always False: checking it needs a full denoising run per request, too slow
  for a dLLM (the LLaDA paper turns it off too); metrics that need it are not meaningful.
- ``loglikelihood_rolling``: the same bound over the whole text with an empty prefix; texts
  longer than ``max_length`` are scored in windows, each later window keeping as much preceding
  text as context as fits, so each token is scored exactly once.
- ``generate_until``: the batched sampler (:func:`harness.sampler.generate`), requests grouped
  by task and identical generation kwargs (a batch never mixes tasks, so each task's sampler
  stats are its own). ``gen_length``, ``steps``, ``block_length``, ``temperature``,
  ``noise_level`` (response | sequence, what NaRA is fed while sampling; see
  ``eval.noise_level``) and ``remasking``, ``cfg_scale``, ``schedule`` are model arguments;
  ``block_length`` defaults to bench's own evaluation's block length for the task's suite
  (:func:`harness.config.default_eval` of the model and :func:`lm_eval_suite`: 8 for math and
  commonsense, 32 for code on real models). A task's ``max_gen_toks`` (or a ``gen_length`` that
  is not a multiple of the block) is rounded up to a multiple of ``block_length``, with ``steps``
  scaled to keep the model arguments' steps per token. The decoded text is cut at the first of
  the task's ``until`` strings. A task's ``temperature``/``do_sample`` are ignored.

An autoregressive base (tiny-ar, Llama, Qwen2) answers all three with its exact log-likelihood
and greedy decoding instead (``harness/lmeval_causal.py``).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import hashlib
import json
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from harness.adapter_paths import resolve_adapter
from harness.config import default_eval
from harness.errors import BenchError
from harness.likelihood import LikelihoodConfig, estimate_loglikelihood
from harness.models.dlm import DiffusionLM
from harness.models.tokenizer import keep_tail
from harness.sampling import SamplerConfig, SamplingStats, generate

log = logging.getLogger(__name__)

MODEL_NAME = "bench-dllm"
PROTOCOL_PREFIX = "lm-eval:"
RESULTS_SIDECAR = "lm_eval_results.json"
DEFAULT_MAX_LENGTH = 4096
DEFAULT_BATCH_SIZE = 16

# Model arguments of :class:`BenchDLLM` besides the model itself (name: type, default).
LM_ARGS: dict[str, tuple[type, Any]] = {
    "mc_num": (int, 128),
    "mc_batch_size": (int, 32),
    "seed": (int, 0),
    "gen_length": (int, 256),
    "steps": (int, 256),
    "block_length": (int, None),  # None: bench's own evaluation's block for the task's suite
    "temperature": (float, 0.0),
    "remasking": (str, "low_confidence"),
    "cfg_scale": (float, 0.0),
    "schedule": (str, "linear"),
    "noise_level": (str, "response"),
    "batch_size": (int, DEFAULT_BATCH_SIZE),
    "max_length": (int, None),
    # fast sampling (harness.sampling): none | prefix | dual; none | threshold:X | factor:X;
    # block | step-level-change:X
    "cache": (str, "none"),
    "parallel": (str, "none"),
    "cache_refresh": (str, "block"),
    # L2D's flow per token on an autoregressive base (harness/lmeval_causal.py)
    "l2d_steps": (int, 7),
    "solver": (str, "midpoint"),
}


def _coerce(name: str, value: Any) -> Any:
    kind, default = LM_ARGS[name]
    if value is None or value == "":
        return default
    if name == "batch_size" and isinstance(value, str) and value.startswith("auto"):
        return DEFAULT_BATCH_SIZE
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise BenchError(
            f"model argument {name}={value!r} is not a valid {kind.__name__}"
        ) from None


# ---------------------------------------------------------------------------------------------
# Adapter folders: find them, check they fit the model, load them
# ---------------------------------------------------------------------------------------------
def check_adapter_fits(dlm: DiffusionLM, folder: Path, trained_on: str | None = None) -> None:
    """Raise one clear BenchError when ``folder`` holds an adapter for another base model:
    adapted layers the model does not have, or factor shapes that do not match its layers."""
    from safetensors import safe_open
    from torch import nn

    from methods.binned import weight_files

    files = weight_files(folder)  # its own, or one per bin (binned_lora)
    from methods.l2d.method import WEIGHTS_FILE as L2D_WEIGHTS

    if not files and (folder / L2D_WEIGHTS).is_file():
        return  # an L2D flow: its loader checks every weight's shape (methods/l2d/method.py)
    if not files:
        raise BenchError(f"adapter folder {folder} has no adapter_model.safetensors")
    modules = dict(dlm.backbone.named_modules())
    where = f" (it was trained on {trained_on!r})" if trained_on else ""
    problems = []
    for weights in files:
        with safe_open(str(weights), framework="pt") as fh:
            names = fh.keys()  # a safetensors handle is not iterable
            for key in names:
                match = re.fullmatch(r"base_model\.model\.(.+)\.lora_([AB])\.weight", key)
                if not match:
                    continue
                name, factor = match.groups()
                shape = list(fh.get_slice(key).get_shape())
                layer = modules.get(name)
                if not isinstance(layer, nn.Linear):
                    problems.append(f"it adapts {name}, which this model does not have")
                elif factor == "A" and shape[1] != layer.in_features:
                    problems.append(f"{name} takes {shape[1]} inputs, here {layer.in_features}")
                elif factor == "B" and shape[0] != layer.out_features:
                    problems.append(f"{name} gives {shape[0]} outputs, here {layer.out_features}")
                if problems:
                    break
        if problems:
            break
    if problems:
        raise BenchError(
            f"adapter {folder} does not fit base model {dlm.info.name!r}{where}: {problems[0]}; "
            "pass the model the adapter was trained on"
        )


def _cell_model(cell: Path | None) -> str | None:
    if cell is None:
        return None
    from results.store import RECORD_NAME, read_record

    return str(read_record(cell / RECORD_NAME).config["model"])


def load_adapted(
    model: str | None, adapter: str | Path | None, device: str = "auto"
) -> tuple[DiffusionLM, Path | None, Path | None]:
    """Load the base model (the cell's own when ``model`` is None) and the adapter onto it.

    Returns (model, adapter folder, cell folder)."""
    from harness.models.loader import load_model
    from methods.registry import load_adapter

    adapter_dir, cell = resolve_adapter(adapter) if adapter is not None else (None, None)
    trained_on = _cell_model(cell)
    name = model or trained_on
    if not name:
        raise BenchError("no model given: pass --model (tiny, an alias or a model folder)")
    dlm = load_model(name, device)
    if adapter_dir is not None:
        check_adapter_fits(dlm, adapter_dir, trained_on)
        if trained_on and trained_on != name:
            log.warning(
                "adapter %s was trained on %r, evaluating on %r", adapter_dir, trained_on, name
            )
        load_adapter(dlm, adapter_dir)
    dlm.eval()  # the adapter's dropout layers are created in training mode
    return dlm, adapter_dir, cell


# ---------------------------------------------------------------------------------------------
# The lm-eval model
# ---------------------------------------------------------------------------------------------
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
        self.likelihood = LikelihoodConfig(args["mc_num"], args["mc_batch_size"], args["seed"])
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
        from harness.lmeval_causal import CausalRequests, is_autoregressive

        self.causal = (  # a causal base: exact likelihoods and greedy decoding instead
            CausalRequests(self, rolling_windows, _stop_strings, cut_at_stop)
            if is_autoregressive(dlm)
            else None
        )

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
        tok = getattr(self.dlm.tokenizer, "tok", None)
        if tok is not None and getattr(tok, "chat_template", None):
            return tok.apply_chat_template(
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
        gen_length = max(block, math.ceil(wanted / block) * block)
        steps = max(gen_length // block, round(base.steps * gen_length / base.gen_length))
        return dataclasses.replace(base, gen_length=gen_length, steps=steps, block_length=block)


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


def _model_max_length(dlm: DiffusionLM) -> int:
    config = getattr(dlm.backbone, "config", None)
    for name in ("max_position_embeddings", "max_sequence_length", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_MAX_LENGTH


def rolling_windows(ids: Sequence[int], max_length: int) -> list[tuple[list[int], list[int]]]:
    """(prefix, target) windows that score every token exactly once: the first ``max_length``
    tokens with no prefix, then steps of ``max_length // 2`` tokens, each with the preceding
    ``max_length - step`` tokens as context."""
    ids = list(ids)
    if not ids:
        return []
    windows = [([], ids[:max_length])]
    step = max(1, max_length // 2)
    for start in range(max_length, len(ids), step):
        target = ids[start : start + step]
        windows.append((ids[max(0, start - (max_length - len(target))) : start], target))
    return windows


def _stop_strings(until: Any) -> list[str]:
    if until is None:
        return []
    if isinstance(until, str):
        return [until]
    return [s for s in until if isinstance(s, str) and s]


def cut_at_stop(text: str, until: Sequence[str]) -> str:
    """``text`` up to the earliest occurrence of any stop string."""
    cut = len(text)
    for stop in until:
        if stop:
            at = text.find(stop)
            if at != -1:
                cut = min(cut, at)
    return text[:cut]


# ---------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------
def task_manager_for(tasks: Sequence[str], include_path: Path | None):
    """A TaskManager that knows every task in ``tasks``; unknown names raise one BenchError.

    With ``include_path`` holding every task, lm-eval's own ~15,000 task index is not built
    (that takes ~20 s)."""
    from lm_eval.tasks import TaskManager

    if include_path is not None:
        include_path = Path(include_path).expanduser()
        if not include_path.is_dir():
            raise BenchError(f"--include-path {include_path} is not a folder of task YAMLs")
        local = TaskManager(include_path=str(include_path), include_defaults=False)
        if not _unknown_tasks(local, tasks):
            return local
    manager = TaskManager(include_path=str(include_path) if include_path else None)
    unknown = _unknown_tasks(manager, tasks)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, manager.all_tasks, n=3, cutoff=0.75)
            hints.append(f"{name} (did you mean {', '.join(close)}?)" if close else name)
        raise BenchError(
            f"unknown lm-eval task(s): {'; '.join(hints)}. List the tasks with `lm-eval ls tasks` "
            "(add --include_path DIR for your own YAMLs), or pass --include-path DIR"
        )
    return manager


def _unknown_tasks(manager, tasks: Sequence[str]) -> list[str]:
    known = set(manager.all_tasks)
    unknown = []
    for name in tasks:
        if name in known or Path(name).is_file():
            continue
        if any(ch in name for ch in "*?[") and fnmatch.filter(manager.all_tasks, name):
            continue
        unknown.append(name)
    return unknown


# ---------------------------------------------------------------------------------------------
# lm-eval results -> bench scores
# ---------------------------------------------------------------------------------------------
def scores_from_results(
    results: dict[str, Any],
    steps_used: dict[str, set[int]],
    sampling: dict[str, SamplingStats] | None = None,
    sampler: str | None = None,
) -> list:
    """One Score per metric of every task (and group) in lm-eval's results; stderr left out.

    The metric is named as lm-eval names it, with its filter appended unless it is ``none``
    (``acc``, ``exact_match/strict-match``). Per-example values are kept when lm-eval logged
    them and their mean is the score."""
    from results.schema import Score

    scores = []
    for task, metrics in results.get("results", {}).items():
        n = (results.get("n-samples", {}).get(task) or {}).get("effective")
        steps = steps_used.get(task, set())
        stats = (sampling or {}).get(task)
        for key, value in metrics.items():
            if "," not in key or "_stderr" in key:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            metric, filt = key.split(",", 1)
            scores.append(
                Score(
                    task=task,
                    metric=metric if filt == "none" else f"{metric}/{filt}",
                    value=float(value),
                    n=n,
                    protocol=PROTOCOL_PREFIX + task,
                    steps=next(iter(steps)) if len(steps) == 1 else None,
                    per_example=_per_example(results, task, metric, filt, float(value)),
                    sampler=sampler if stats is not None else None,
                    sampling=stats.to_dict() if stats is not None else None,
                )
            )
    return scores


def _per_example(results, task: str, metric: str, filt: str, value: float) -> list[dict]:
    if not math.isfinite(value):
        return []
    samples = [s for s in results.get("samples", {}).get(task, []) if s.get("filter") == filt]
    rows = []
    for s in samples:
        v = s.get(metric)
        if isinstance(v, bool):
            v = float(v)
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            return []
        resp = s.get("filtered_resps")
        pred = resp[0] if isinstance(resp, list) and resp and isinstance(resp[0], str) else None
        rows.append({"id": str(s.get("doc_id")), "prediction": pred, "correct": float(v)})
    if not rows or abs(sum(r["correct"] for r in rows) / len(rows) - value) > 1e-9:
        return []
    return rows


# ---------------------------------------------------------------------------------------------
# The Python API behind `bench eval --lm-eval-tasks`
# ---------------------------------------------------------------------------------------------
def evaluate_lm(
    lm: BenchDLLM,
    tasks: Sequence[str],
    limit: int | None = None,
    include_path: Path | None = None,
    apply_chat_template: bool | None = None,
    log_samples: bool = True,
    task_manager=None,
    confirm_run_unsafe_code: bool = False,
) -> dict[str, Any]:
    """lm-eval's ``simple_evaluate`` on ``lm``; ``apply_chat_template`` None means: when the
    tokenizer has a chat template (instruct models). ``confirm_run_unsafe_code`` lets tasks that
    execute generated code (humaneval, mbpp) run. Standard errors are not computed
    (``bootstrap_iters=0``): the report derives intervals from the per-example values."""
    import lm_eval

    tasks = [t.strip() for t in tasks if t and t.strip()]
    if not tasks:
        raise BenchError("no lm-eval task given: pass --lm-eval-tasks NAME[,NAME...]")
    if limit is not None and limit <= 0:
        raise BenchError(f"--limit must be positive, got {limit}")
    manager = task_manager or task_manager_for(tasks, include_path)
    if apply_chat_template is None:
        apply_chat_template = bool(lm.chat_template())
    names = ", ".join(tasks)
    try:
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=list(tasks),
            limit=limit,
            task_manager=manager,
            apply_chat_template=apply_chat_template,
            log_samples=log_samples,
            random_seed=lm.seed,
            numpy_random_seed=lm.seed,
            torch_random_seed=lm.seed,
            fewshot_random_seed=lm.seed,
            bootstrap_iters=0,
            confirm_run_unsafe_code=confirm_run_unsafe_code,
        )
    except (ConnectionError, FileNotFoundError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "code_eval" in str(err):
            raise BenchError(
                f"lm-eval task(s) {names} score with HF evaluate's code_eval metric, which is not "
                "cached here: run `python -c \"import evaluate; evaluate.load('code_eval')\"` once "
                "where the Hugging Face hub is reachable (and set HF_ALLOW_CODE_EVAL=1)"
            ) from err
        raise BenchError(
            f"lm-eval task(s) {names} need data or a metric that is neither local nor cached "
            f"({first}): run once where the Hugging Face hub is reachable (without "
            "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE) to fill the cache, or write a local task YAML "
            "(dataset_path: json) and pass --include-path DIR"
        ) from err
    except ValueError as err:
        if "unsafe" not in str(err):
            raise
        raise BenchError(
            f"lm-eval task(s) {names} execute generated code: allow it explicitly "
            "(confirm_run_unsafe_code=True; code_eval also needs HF_ALLOW_CODE_EVAL=1)"
        ) from err
    if results is None:  # only a non-zero rank of a distributed run
        raise BenchError("lm-eval returned no results")
    return results


def run_lm_eval(
    model: str | None,
    adapter: Path | None,
    tasks: list[str],
    limit: int | None,
    include_path: Path | None,
    device: str,
    model_args: dict[str, Any],
    *,
    apply_chat_template: bool | None = None,
    confirm_run_unsafe_code: bool = False,
    runs_dir: Path = Path("runs"),
) -> dict[str, Any]:
    """Score ``model`` (None: the cell's own base) plus ``adapter`` (a cell or adapter folder)
    on lm-eval ``tasks`` and store the scores (protocol ``lm-eval:<task>``).

    With a cell's adapter the scores go into that cell's record (replacing earlier scores of the
    same tasks); otherwise into ``runs_dir/lm-eval/<model>/cells/<id>/record.json``, whose id
    depends on the adapter and the model arguments, so re-runs with more tasks add to it. The
    full lm-eval results (without samples) go beside the record in ``lm_eval_results.json``.
    Returns lm-eval's results with ``bench_record`` (the record's path) added.
    """
    from harness.models.loader import valid_model_names

    if model is None and adapter is None:
        raise BenchError(f"pass --model ({valid_model_names()}) or --adapter CELL")
    tasks = [t.strip() for t in tasks if t and t.strip()]
    if not tasks:
        raise BenchError("no lm-eval task given: pass --lm-eval-tasks NAME[,NAME...]")
    # Check the tasks before loading the model: a typo should not cost a model load.
    manager = task_manager_for(tasks, include_path)
    lm = BenchDLLM(
        model=model, adapter=str(adapter) if adapter else None, device=device, **model_args
    )
    results = evaluate_lm(
        lm,
        tasks,
        limit,
        include_path,
        apply_chat_template,
        task_manager=manager,
        confirm_run_unsafe_code=confirm_run_unsafe_code,
    )
    path = store_results(lm, results, limit, runs_dir)
    results["bench_record"] = str(path)
    return results


def store_results(
    lm: BenchDLLM, results: dict[str, Any], limit: int | None, runs_dir: Path
) -> Path:
    """Write the scores into the cell's record, or a new lm-eval record; returns its path."""
    from results.environment import collect_environment
    from results.schema import utc_now
    from results.store import RECORD_NAME, atomic_write_text, read_record, write_record

    label = lm.causal.label if lm.causal is not None else lm.sampler.label
    scores = scores_from_results(results, lm.steps_used, lm.sampling, label)
    settings = {
        "model": lm.dlm.info.name,
        "adapter": str(lm.adapter_dir) if lm.adapter_dir else None,
        "model_args": dict(lm.args),
        "max_length": lm.max_length,
        "block_length_used": {t: sorted(b) for t, b in lm.blocks_used.items()},
        "limit": limit,
        "lm_eval_version": _version("lm-eval"),
        "model_repairs": list(lm.dlm.info.repairs),
    }
    if lm.cell_dir is not None:
        cell_dir = lm.cell_dir
        record = read_record(cell_dir / RECORD_NAME)
    else:
        cell_dir, record = _standalone_cell(lm, runs_dir)
        if (cell_dir / RECORD_NAME).is_file():
            record = read_record(cell_dir / RECORD_NAME)
    replaced = {s.protocol for s in scores}
    record.scores = [s for s in record.scores if s.protocol not in replaced] + scores
    if lm.cell_dir is None:
        record.finished_at = utc_now()
        record.environment = collect_environment(
            device_name=torch.cuda.get_device_name(lm.dlm.device)
            if lm.dlm.device.type == "cuda"
            else None
        )
        record.environment.model_repairs = list(lm.dlm.info.repairs)
    path = write_record(cell_dir, record)
    _write_sidecar(cell_dir / RESULTS_SIDECAR, results, settings, atomic_write_text)
    return path


def _version(package: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _standalone_cell(lm: BenchDLLM, runs_dir: Path):
    from results.schema import Record

    info = lm.dlm.info
    method = "base"
    if lm.adapter_dir is not None:
        from methods.base import METHOD_FILE

        method = json.loads((lm.adapter_dir / METHOD_FILE).read_text())["method"]
    key = json.dumps(
        [info.name, str(lm.adapter_dir.resolve()) if lm.adapter_dir else None, lm.args],
        sort_keys=True,
        default=str,
    )
    cell_id = f"{method}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(info.name).name or info.name).strip("_") or "model"
    cell_dir = Path(runs_dir) / "lm-eval" / slug / "cells" / cell_id
    record = Record(
        cell_id=cell_id,
        status="done",
        config={
            "model": info.name,
            "method": method,
            "task": "lm-eval",
            "seed": lm.seed,
            "eval": {"protocol": "lm-eval", **lm.args},
        },
        adapter_dir=str(lm.adapter_dir.resolve()) if lm.adapter_dir else None,
    )
    return cell_dir, record


def _write_sidecar(path: Path, results: dict[str, Any], settings: dict, atomic_write_text) -> None:
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            data = {}
    for task in results.get("results", {}):
        data[task] = {
            "results": results["results"][task],
            "n-samples": results.get("n-samples", {}).get(task),
            "config": results.get("configs", {}).get(task),
            "versions": results.get("versions", {}).get(task),
            "date": results.get("date"),
            "settings": settings,
        }
    atomic_write_text(path, json.dumps(data, indent=1, default=str) + "\n")
