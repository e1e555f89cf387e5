"""Typed configs of one grid cell, and the defaults per model kind and suite.

Defaults for real models follow the NaRA release (see ../shared/notes/nara.md); the tiny model has
its own small budgets so that a whole grid runs on a laptop CPU. Every resolved value is stored in
the cell's record, so a report can always say exactly what ran.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.ground.errors import BenchError
from tasks.prompts import TEMPLATES
from tasks.protocols import DEFAULT as DEFAULT_PROTOCOL
from tasks.protocols import get_protocol

TRAIN_DATA_MODES = ("suite", "task", "auto")
MASKING_MODES = ("bernoulli", "exact")  # harness.processes.masked.forward.MaskingConfig
LOSS_NORMALIZATIONS = ("answer_length", "token")
EVAL_PROTOCOLS = ("auto", "gen", "loglik")
HASH_EXCLUDED = ("axes", "eval_tasks", "train_data_note")


@dataclass(frozen=True)
class TrainConfig:
    steps: int | None = None  # optimizer updates; None = epochs over the training split
    epochs: float = 1.0
    lr: float = 1e-4
    batch_size: int = 4
    grad_accum: int = 8
    warmup_ratio: float = 0.05
    weight_decay: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    max_length: int = 512
    train_limit: int | None = None  # cap on training examples
    val_examples: int = 128  # held out of the training split for validation loss
    val_every: int = 64  # updates between validations (and best-checkpoint checks)
    noise_bins: int = 10
    masking: str = "bernoulli"  # bernoulli | exact
    normalize: str = "answer_length"  # answer_length | token
    gradient_checkpointing: bool = False
    # EOS tail (LLaDA's SFT): every response padded with EOS to this many tokens, the EOS masked
    # and scored like the answer, so a sampler asked for that many tokens has seen where answers
    # stop; 0 pads to the batch's longest row. Masked-diffusion bases only.
    eos_tail: int = 0
    # What the adapter trains on: "suite" = the suite's training set (commonsense_170k, math_14k,
    # codefeedback_python) for one adapter evaluated on every task of the suite; "task" = each
    # task's own training split; "auto" = suite where its training set is available here, else
    # task (the tiny model's default; the choice is recorded in the cell).
    data: str = "task"

    def __post_init__(self) -> None:
        if self.data not in TRAIN_DATA_MODES:
            raise BenchError(
                f"train.data must be one of {', '.join(TRAIN_DATA_MODES)}, got {self.data!r}"
            )
        positive = ("lr", "batch_size", "grad_accum", "max_length", "val_every", "noise_bins")
        for name in positive:
            if not getattr(self, name) > 0:
                raise BenchError(f"train.{name} must be positive, got {getattr(self, name)!r}")
        if self.steps is not None and self.steps <= 0:
            raise BenchError(f"train.steps must be positive, got {self.steps!r}")
        if self.eos_tail < 0:
            raise BenchError(f"train.eos_tail must be >= 0 (0: no tail), got {self.eos_tail!r}")
        self._check_ranges()

    def _check_ranges(self) -> None:
        """Values the optimizer, the schedule or the data split would otherwise take silently
        (epochs=0 trains one update, grad_clip=0 zeroes every gradient) or refuse only inside a
        cell, after its model has loaded."""
        if not self.epochs > 0:
            raise BenchError(f"train.epochs must be positive, got {self.epochs!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise BenchError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise BenchError(f"train.{name} must be in [0, 1), got {getattr(self, name)!r}")
        for name in ("weight_decay", "eps"):
            if not getattr(self, name) >= 0:
                raise BenchError(f"train.{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.grad_clip > 0:
            raise BenchError(
                f"train.grad_clip must be positive (a gradient-norm bound; 0 would zero every "
                f"update), got {self.grad_clip!r}"
            )
        if self.val_examples < 0:
            raise BenchError(f"train.val_examples must be >= 0, got {self.val_examples!r}")
        if self.train_limit is not None and self.train_limit <= 0:
            raise BenchError(
                f"train.train_limit must be a positive number of examples, got {self.train_limit!r}"
            )
        if self.masking not in MASKING_MODES:
            raise BenchError(
                f"train.masking must be one of {', '.join(MASKING_MODES)}, got {self.masking!r}"
            )
        if self.normalize not in LOSS_NORMALIZATIONS:
            raise BenchError(
                f"train.normalize must be one of {', '.join(LOSS_NORMALIZATIONS)}, "
                f"got {self.normalize!r}"
            )

    def refuse_eos_tail(self, process: str) -> None:
        """The EOS tail is a masked-diffusion padding: another process's objective stops."""
        if self.eos_tail:
            raise BenchError(
                f"train.eos_tail pads masked-diffusion responses; this model trains with the "
                f"{process} process (set train.eos_tail=0)"
            )


@dataclass(frozen=True)
class EvalConfig:
    protocol: str = "auto"  # auto (the task's default) | gen | loglik
    limit: int | None = None  # cap on scored examples
    template: str = "alpaca"  # alpaca | llm-adapters | plain | chat (tasks/prompts.py)
    gen_length: int = 256
    block_length: int = 8
    temperature: float = 0.0
    remasking: str = "low_confidence"
    cfg_scale: float = 0.0
    schedule: str = "linear"
    noise_level: str = "response"  # response | sequence (the release's default, an ablation)
    batch_size: int = 16
    mc_num: int = 128
    mc_batch_size: int = 32
    # Fast sampling (harness.processes.masked.sampling). Evaluation-only: a grid axis over them re-evaluates the
    # same trained adapter (like --steps); they are left out of the cell id.
    cache: str = "none"  # none | prefix | dual
    parallel: str = "none"  # none | threshold:X | factor:X | fastdllm-threshold:X | ...-factor:X
    cache_refresh: str = "block"  # block | step-level-change:X
    # LLaDA's generate options (harness.processes.masked.sampling.confidence) and Dream's own
    # sampler's (remasking=origin|maskgit_plus|topk_margin|entropy: harness...sampling.dream)
    logits_eos_inf: bool = False
    confidence_eos_eot_inf: bool = False
    alg_temp: float = 0.0
    eps: float = 1e-3
    # Monte Carlo masks of the likelihood (harness.processes.masked.likelihood): llada | stratified
    mc_masks: str = "llada"
    # L2D's flow per generated token (methods.l2d.solve), evaluation-only too: integration
    # intervals (7 with midpoint = the release's 15 flow evaluations) and the torchdiffeq solver.
    l2d_steps: int = 7
    solver: str = "midpoint"  # euler | midpoint | rk4 | adaptive_heun | bosh3 | dopri5
    # The published protocol the cell follows (tasks/protocols.py, docs/protocols.md): bench |
    # llm-adapters | llada | lm-eval. It reads answers its way, and a protocol that fixes a
    # template sets ``template`` to it (llm-adapters: LLM-Adapters' own strings), so the record
    # shows the template that ran. Left out of the cell id while it is "bench", so the ids of
    # cells from before it existed do not change.
    follows: str = "bench"

    def __post_init__(self) -> None:
        from harness.config.sampling import parse_cache, parse_parallel, parse_refresh
        from methods.l2d.solve import check_solver, check_steps

        fixed = get_protocol(self.follows).template
        if fixed is not None:
            object.__setattr__(self, "template", fixed)
        if self.template not in TEMPLATES:
            raise BenchError(
                f"unknown eval.template {self.template!r}; valid: {', '.join(TEMPLATES)}"
            )
        parse_cache(self.cache)
        parse_parallel(self.parallel)
        parse_refresh(self.cache_refresh)
        for name in ("logits_eos_inf", "confidence_eos_eot_inf"):
            if not isinstance(getattr(self, name), bool):
                raise BenchError(f"eval.{name} must be true or false, got {getattr(self, name)!r}")
        check_solver(self.solver)
        check_steps(self.l2d_steps)
        self._check_ranges()

    def with_sampler(self, variant: dict[str, Any] | None) -> EvalConfig:
        """This config with one fast-sampling variant's settings (``cache``, ``parallel``, ...;
        validated), or itself for none: how every evaluation and preflight reads a variant."""
        return dataclasses.replace(self, **variant) if variant else self

    def _check_ranges(self) -> None:
        """What every process would refuse or misread: checked when the grid is built, before
        any model loads. Each sampler's own rules (its remasking names, blocks dividing the
        length, ...) are its process's preflight (harness.run.preflight)."""
        if self.protocol not in EVAL_PROTOCOLS:
            raise BenchError(
                f"eval.protocol must be one of {', '.join(EVAL_PROTOCOLS)}, got {self.protocol!r}"
            )
        if self.limit is not None and self.limit <= 0:
            raise BenchError(
                f"eval.limit must be a positive number of examples, got {self.limit!r}"
            )
        for name in ("gen_length", "block_length", "batch_size", "mc_num", "mc_batch_size"):
            if not getattr(self, name) > 0:
                raise BenchError(f"eval.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("temperature", "cfg_scale", "alg_temp"):
            if not getattr(self, name) >= 0:
                raise BenchError(f"eval.{name} must be >= 0, got {getattr(self, name)!r}")


# EvalConfig fields that only change how a trained adapter is sampled: not part of a cell's id.
FLOW_EVAL_FIELDS = ("l2d_steps", "solver")
EVAL_ONLY_FIELDS = ("cache", "parallel", "cache_refresh", *FLOW_EVAL_FIELDS)
# EvalConfig fields added after cells were first recorded: left out of the cell id at their
# default, so the ids of cells that do not use them stay what they were.
# Training fields added after cells were first hashed: left out of the id at their default.
LATER_TRAIN_DEFAULTS = {"eos_tail": 0}
LATER_EVAL_DEFAULTS = {
    "logits_eos_inf": False,
    "confidence_eos_eot_inf": False,
    "alg_temp": 0.0,
    "eps": 1e-3,
    "mc_masks": "llada",
}


def sampler_fields(method: str) -> tuple[str, ...]:
    """The evaluation-only fields that change how ``method``'s cells sample: the flow's only
    for a method that decodes with a flow (L2D), so LoRA is not re-evaluated per flow setting."""
    from methods.registry import get_method

    if get_method(method).flow_decoding:
        return EVAL_ONLY_FIELDS
    return tuple(f for f in EVAL_ONLY_FIELDS if f not in FLOW_EVAL_FIELDS)


@dataclass(frozen=True)
class CellConfig:
    """Everything that determines one trained adapter. Its hash is the cell id."""

    model: str
    method: str
    method_config: dict[str, Any]
    task: str
    suite: str
    seed: int
    train: TrainConfig
    eval: EvalConfig
    axes: dict[str, Any] = field(default_factory=dict)  # the grid axes that vary, for reports
    # The tasks this cell's adapter is scored on. ``task`` names what it TRAINS on: a task (its
    # own training split, train.data=task) or a suite training set such as math_14k. Like the
    # sampling steps, the list is not part of the cell id: asking for one more task later
    # evaluates the saved adapter on it instead of training a new one.
    eval_tasks: tuple[str, ...] = ()
    train_data_note: str = ""  # why train.data=auto resolved as it did (recorded, footnoted)
    # The task's own settings (``--set <task>.FIELD``, tasks.base.TaskSpec.settings); {} for
    # tasks without any, and then left out of the cell id so that those ids never change.
    task_config: dict[str, Any] = field(default_factory=dict)

    @property
    def evaluated_tasks(self) -> tuple[str, ...]:
        return self.eval_tasks or (self.task,)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def rank(self) -> int | None:
        """The adapter rank; None for a method without one (the base model)."""
        rank = self.method_config.get("rank")
        return None if rank is None else int(rank)

    def identity(self) -> dict[str, Any]:
        """What the cell id hashes: the resolved config without the axes, the evaluated task
        list, notes and evaluation-only sampler settings (JSON-ready). A saved adapter carries it
        in full (harness/run/adapter_stamp.py), so reuse compares configs, not a 10-digit digest."""
        identity = {k: v for k, v in self.to_dict().items() if k not in HASH_EXCLUDED}
        if not identity["task_config"]:
            del identity["task_config"]
        identity["eval"] = {
            k: v
            for k, v in identity["eval"].items()
            if k not in EVAL_ONLY_FIELDS and LATER_EVAL_DEFAULTS.get(k, object()) != v
        }
        identity["train"] = {
            k: v for k, v in identity["train"].items() if LATER_TRAIN_DEFAULTS.get(k, object()) != v
        }
        if identity["eval"].get("follows") == DEFAULT_PROTOCOL:
            del identity["eval"]["follows"]
        return json.loads(json.dumps(identity, sort_keys=True, default=str))

    @property
    def cell_id(self) -> str:
        """Stable across runs and machines: a hash of the resolved config (axes, the evaluated
        task list, notes and evaluation-only sampler settings excluded). The readable part names
        the training data."""
        blob = json.dumps(self.identity(), sort_keys=True, default=str)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
        rank = "" if self.rank is None else f"-r{self.rank}"
        return f"{self.method}-{self.task}{rank}-s{self.seed}-{digest}"


def is_tiny(model: str) -> bool:
    """The embedded tiny dLLM or tiny causal LM, by alias or as a saved folder (tests build
    small ones)."""
    from harness.models.tokenizer import CHAR_TOKENIZER_FILE

    return model in ("tiny", "tiny-ar") or (Path(model) / CHAR_TOKENIZER_FILE).is_file()


def default_train(model: str, suite: str) -> TrainConfig:
    if is_tiny(model):
        synthetic = suite == "synthetic"
        return TrainConfig(
            steps=80 if synthetic else 60,
            lr=2e-3,
            batch_size=32 if synthetic else 16,
            grad_accum=1,
            warmup_ratio=0.05,
            weight_decay=0.0,
            max_length=192 if synthetic else 320,
            train_limit=None if synthetic else 2000,
            val_examples=64 if synthetic else 32,
            val_every=40,
            data="task" if synthetic else "auto",
        )
    per_suite = {"commonsense": (1e-5, 1.0), "math": (1e-4, 10.0), "code": (1e-4, 1.0)}
    lr, epochs = per_suite.get(suite, (1e-4, 1.0))
    # The release masks exactly ceil(t L) answer tokens and trains one adapter per suite. Its
    # batch is 1 x 32 accumulation (one noise level per forward); per-example levels let us
    # run 4 x 8, the same 32 examples per update (README: "Real models").
    return TrainConfig(
        lr=lr,
        epochs=epochs,
        masking="exact",
        data="suite" if suite in ("commonsense", "math", "code") else "task",
    )


def default_rank(model: str) -> int:
    """The release's rank 32 for real models; 8 for the tiny model (hidden size 128); 1 for the
    theory sandbox (harness/models/sandboxes.py), whose update is rank one."""
    from harness.models.sandboxes import sandbox_of

    if sandbox_of(model) is not None:
        return 1
    return 8 if is_tiny(model) else 32


def default_eval(model: str, suite: str) -> EvalConfig:
    if is_tiny(model):
        synthetic = suite == "synthetic"
        return EvalConfig(
            # A character-level tiny model never writes "answer2": rank the choices instead.
            protocol="loglik" if suite == "commonsense" else "auto",
            template="plain",
            limit=200 if synthetic else 100,
            gen_length=16,
            block_length=4 if synthetic else 8,
            batch_size=64,
            mc_num=32 if synthetic else 16,
            mc_batch_size=32 if synthetic else 16,
        )
    return EvalConfig(
        gen_length=256 if suite != "code" else 512, block_length=8 if suite != "code" else 32
    )


def default_steps(model: str, suite: str) -> list[int]:
    """Sampling steps evaluated per cell: one step per generated token by default."""
    return [default_eval(model, suite).gen_length]


def default_method_overrides(model: str, method: str) -> dict[str, Any]:
    """Tiny models get a hypernetwork scaled to them (the release's 64->256->512 is 6.5x LoRA
    at this size); real models keep the released defaults."""
    if is_tiny(model) and method == "nara":
        return {"hidden_sizes": (32, 64)}
    if is_tiny(model) and method == "l2d":
        # ../shared/notes/l2d.md section 6: a 16-d token space and a 64-d time embedding
        return {"rep_size": 16, "embed_dim": 64, "sigma": 16.0}
    return {}
