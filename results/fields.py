"""The parts of a result record (scores, noise bins, training curve, costs, environment,
provenance, evaluations), each with its dict form and its validation on load. The record itself,
its conventions and its versions are in :mod:`results.schema`."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.ground.errors import BenchError

N_NOISE_BINS = 10


def utc_now() -> str:
    """The current time as an ISO 8601 string in UTC, the format of ``created_at``."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class RecordError(BenchError):
    """A record that does not follow the schema (the message names the file when known)."""


def _where(source: str | Path | None) -> str:
    return f"{source}: " if source else ""


def _require(d: Any, keys: tuple[str, ...] | list[str], what: str, source: Any) -> None:
    if not isinstance(d, dict):
        raise RecordError(f"{_where(source)}{what} must be an object, got {type(d).__name__}")
    missing = [k for k in keys if k not in d]
    if missing:
        raise RecordError(f"{_where(source)}{what} is missing required field(s): {missing}")


def _num(x: Any, what: str, source: Any, optional: bool = False) -> float | None:
    if x is None and optional:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise RecordError(f"{_where(source)}{what} must be a number, got {x!r}")
    return x


@dataclass
class Score:
    """One metric of one task, with the per-example predictions it was computed from."""

    task: str
    metric: str
    value: float
    n: int | None = None
    protocol: str | None = None
    steps: int | None = None
    per_example: list[dict[str, Any]] = field(default_factory=list)
    # generative scores: the fast-sampling settings' label ("plain", "cache=dual,...") and what
    # the sampler did (forwards, row_forwards, tokens, time_s, tokens_per_s, cache_used, ...)
    sampler: str | None = None
    sampling: dict[str, Any] | None = None
    # Content hash of the scored examples: two scores pair example by example only if equal.
    scored_set_hash: str | None = None
    # The rule that read the answers (tasks/protocols.py names), e.g. "first-capital".
    answer_rule: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "task": self.task,
            "metric": self.metric,
            "value": self.value,
            "n": self.n,
            "protocol": self.protocol,
            "steps": self.steps,
            "per_example": [dict(e) for e in self.per_example],
            "scored_set_hash": self.scored_set_hash,
        }
        if self.sampler is not None:
            out["sampler"] = self.sampler
        if self.sampling is not None:
            out["sampling"] = dict(self.sampling)
        if self.answer_rule is not None:
            out["answer_rule"] = self.answer_rule
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: Any = None) -> Score:
        _require(d, ("task", "metric", "value"), "score", source)
        per_example = d.get("per_example") or []
        if not isinstance(per_example, list):
            raise RecordError(f"{_where(source)}score.per_example must be a list")
        for e in per_example:
            _require(e, ("id", "correct"), f"per_example of {d['task']}/{d['metric']}", source)
        steps = d.get("steps")
        return cls(
            task=str(d["task"]),
            metric=str(d["metric"]),
            value=_num(d["value"], f"score {d['task']}/{d['metric']}.value", source),
            n=d.get("n"),
            protocol=d.get("protocol"),
            steps=None if steps is None else int(steps),
            per_example=[dict(e) for e in per_example],
            sampler=d.get("sampler"),
            sampling=dict(d["sampling"]) if d.get("sampling") else None,
            scored_set_hash=d.get("scored_set_hash"),
            answer_rule=_text(d.get("answer_rule"), f"score {d['task']}.answer_rule", source),
        )


def _text(x: Any, what: str, source: Any) -> str | None:
    if x is not None and not isinstance(x, str):
        raise RecordError(f"{_where(source)}{what} must be a string, got {x!r}")
    return x


@dataclass
class NoiseBin:
    """Validation loss in one noise-level bin [bin_lo, bin_hi)."""

    bin_lo: float
    bin_hi: float
    weighted_loss: float | None
    ce_per_token: float | None
    n_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: Any = None) -> NoiseBin:
        _require(d, ("bin_lo", "bin_hi", "n_tokens"), "val_loss_bins entry", source)
        return cls(
            bin_lo=float(d["bin_lo"]),
            bin_hi=float(d["bin_hi"]),
            weighted_loss=_num(d.get("weighted_loss"), "weighted_loss", source, optional=True),
            ce_per_token=_num(d.get("ce_per_token"), "ce_per_token", source, optional=True),
            n_tokens=int(d["n_tokens"]),
        )


@dataclass
class TrainPoint:
    """One point of the training curve (``val_loss`` only where validation ran)."""

    step: int
    loss: float
    lr: float
    val_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: Any = None) -> TrainPoint:
        _require(d, ("step", "loss", "lr"), "train_curve entry", source)
        return cls(
            step=int(d["step"]),
            loss=float(d["loss"]),
            lr=float(d["lr"]),
            val_loss=_num(d.get("val_loss"), "val_loss", source, optional=True),
        )


@dataclass
class Costs:
    """What the cell cost. Unknown values stay None (e.g. peak memory on a CPU)."""

    trainable_params: int | None = None
    total_params: int | None = None  # the base model's parameters, adapter excluded
    adapter_bytes: int | None = None
    train_time_s: float | None = None
    tokens_per_s: float | None = None  # training throughput
    peak_memory_bytes: int | None = None
    eval_time_s: float | None = None
    time_per_sampling_step_s: float | None = None
    # How busy the machine was while training / evaluation were timed (harness/ground/machine_load.py).
    train_load_avg: float | None = None
    train_cpu_share: float | None = None
    eval_load_avg: float | None = None
    eval_cpu_share: float | None = None
    # The threads the whole run put on this host (all its workers), against which the load is
    # read; None in records written before it was recorded.
    run_threads: int | None = None
    # Seconds this cell's worker spent loading the base model: 0.0 when it reused the base it
    # already held (harness/run/executors/model_cache.py), None in records written before reuse.
    model_load_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, source: Any = None) -> Costs:
        d = d or {}
        if not isinstance(d, dict):
            raise RecordError(f"{_where(source)}costs must be an object")
        known = {f.name for f in fields(cls)}
        out = {}
        for k in known:
            out[k] = _num(d.get(k), f"costs.{k}", source, optional=True)
        return cls(**out)


@dataclass
class Environment:
    """Where the cell ran."""

    packages: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    git_dirty: bool | None = None
    device_name: str | None = None
    threads: int | None = None
    # torch's CPU kernel set (``torch.backends.cpu.get_cpu_capability()``: AVX2, AVX512, ...):
    # training rounds differently under each, so the same cell can score differently on two
    # machines (docs/measurements.md, the demo on two CPUs)
    cpu_kernels: str | None = None
    python: str | None = None
    # load-time repairs applied to the model's released code (harness/models/llada.py, dream.py)
    model_repairs: list[str] = field(default_factory=list)
    # Which worker ran the cell (harness/run/executors): executor, node, worker, pid, device, attempt.
    placement: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, source: Any = None) -> Environment:
        d = d or {}
        if not isinstance(d, dict):
            raise RecordError(f"{_where(source)}environment must be an object")
        return cls(
            packages=dict(d.get("packages") or {}),
            git_commit=d.get("git_commit"),
            git_dirty=d.get("git_dirty"),
            device_name=d.get("device_name"),
            threads=d.get("threads"),
            cpu_kernels=d.get("cpu_kernels"),
            python=d.get("python"),
            model_repairs=list(d.get("model_repairs") or []),
            placement=dict(d.get("placement") or {}),
        )


@dataclass
class Provenance:
    """Where one split of one task's data came from. ``fallback_of`` names the split it replaces
    (e.g. a local training file standing in for an unavailable hub split); None if not a fallback.
    """

    task: str
    split: str
    source: str
    detail: str | None = None
    content_hash: str | None = None
    size: int | None = None
    limit: int | None = None
    fallback_of: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: Any = None) -> Provenance:
        _require(d, ("task", "split", "source"), "provenance entry", source)
        return cls(
            task=str(d["task"]),
            split=str(d["split"]),
            source=str(d["source"]),
            detail=d.get("detail"),
            content_hash=d.get("content_hash"),
            size=d.get("size"),
            limit=d.get("limit"),
            fallback_of=d.get("fallback_of"),
        )


@dataclass
class Evaluation:
    """One evaluated task of a cell: how it was scored and on exactly which examples."""

    task: str
    protocol: str | None = None
    n: int | None = None
    scored_hash: str | None = None  # content hash of the scored examples (the test provenance's)
    steps: list[int] = field(default_factory=list)  # sampling step counts evaluated (gen)
    predictions: list[str] = field(default_factory=list)  # files, relative to the cell folder
    eval_time_s: float | None = None
    sampling_forwards: int = 0  # denoising forwards made (gen), for the time per sampling step
    sampling_time_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: Any = None) -> Evaluation:
        _require(d, ("task",), "evaluations entry", source)
        return cls(
            task=str(d["task"]),
            protocol=d.get("protocol"),
            n=d.get("n"),
            scored_hash=d.get("scored_hash"),
            steps=[int(s) for s in d.get("steps") or []],
            predictions=[str(p) for p in d.get("predictions") or []],
            eval_time_s=_num(d.get("eval_time_s"), "eval_time_s", source, optional=True),
            sampling_forwards=int(d.get("sampling_forwards") or 0),
            sampling_time_s=_num(
                d.get("sampling_time_s"), "sampling_time_s", source, optional=True
            ),
        )
