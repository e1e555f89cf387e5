"""The result record: one JSON file per grid cell, versioned and validated on load.

A record is written by the runner (``harness/run/runner.py``) and read by the report
(``reports/``). Everything a paper table, a cost analysis and a noise-level plot needs is in it;
the report never reads anything else from a cell folder except the adapter for NaRA's core plots.

Conventions (the runner fills, the report relies on them):

- ``config`` is the resolved cell config. Required keys: ``model``, ``method``, ``task``,
  ``seed``. Expected keys (defaults used when absent): ``suite`` (None), ``rank`` (None),
  ``method_config`` ({}), ``train`` ({}), ``eval`` ({}: protocol, sampler settings, steps,
  limit, ...), ``axes`` ({}: only the grid axes that vary AND apply to this cell, e.g.
  ``{"nara.c_scale": 0.1}``; ``rank``/``seed``/``steps`` need not be repeated there).
- ``Score.value`` and ``per_example[].correct`` are on the same scale (fractions in [0, 1] for
  accuracy-like metrics); ``value`` must equal the mean of ``correct`` when per-example data is
  present. A ``--steps`` axis is recorded as several scores that differ only in ``steps``. When a
  task has several metrics, list its primary metric first: the main table uses the first one.
- ``Score.scored_set_hash`` is the content hash of the scored examples; the report pairs two
  cells' examples only when their hashes agree.
- ``val_loss_bins``: 10 bins of the noise level t over [0, 1]; ``weighted_loss`` is the
  1/t-weighted diffusion loss, ``ce_per_token`` the plain cross-entropy per masked token.
- ``costs.total_params`` counts the BASE model's parameters (without the adapter), so the report's
  "% of base" is ``trainable_params / total_params``.
- ``adapter_dir`` is relative to the cell folder (the folder holding ``record.json``).
- Timestamps are ISO 8601 strings in UTC (see :func:`utc_now`).
- One cell trains ONE adapter and may score it on several tasks (the paper's protocol: one
  adapter per suite training set). ``config.task`` names what the cell trains on (a task, or a
  suite training set such as ``math_14k``), ``config.eval_tasks`` the tasks it is scored on,
  ``config.train["data"]`` the mode (``suite`` or ``task``). ``scores`` hold every evaluated
  task's metrics (``Score.task`` is the evaluated task); ``evaluations`` hold one entry per
  evaluated task: protocol, the content hash of its scored set, its predictions files.

- ``config.eval.follows`` names the published protocol the cell followed (``bench``,
  ``llm-adapters``, ``llada``, ``lm-eval``: tasks/protocols.py, docs/protocols.md), and
  ``Score.answer_rule`` the rule that read the answers of a generative score (``first-capital``,
  ``last-number``, ...; None where no protocol changes the rule: code, boxed, log-likelihood).

Version history: 1 had no ``eval_tasks``/``evaluations`` (one task per cell); 2 had no protocol
(``config.eval.follows``) and no ``Score.answer_rule``. Older records are read, upgraded in memory:
a version-1 record's one evaluated task is ``config.task``; a version-2 record followed ``bench``,
the only protocol there was, and its answer rules are not known (None). Version 3 is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from results.fields import (
    N_NOISE_BINS,
    Costs,
    Environment,
    Evaluation,
    NoiseBin,
    Provenance,
    RecordError,
    Score,
    TrainPoint,
    _require,
    _where,
    utc_now,
)

# The parts are importable from here too: records and their parts are one schema.
__all__ = [
    "N_NOISE_BINS",
    "PER_EXAMPLE_KEYS",
    "READABLE_VERSIONS",
    "REQUIRED_CONFIG_KEYS",
    "SCHEMA_VERSION",
    "STATUSES",
    "Costs",
    "Environment",
    "Evaluation",
    "NoiseBin",
    "Provenance",
    "Record",
    "RecordError",
    "Score",
    "TrainPoint",
    "upgrade",
    "utc_now",
]

SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
PROTOCOL_BEFORE_V3 = "bench"  # what a record written before protocols existed followed
STATUSES = ("done", "failed", "running")
REQUIRED_CONFIG_KEYS = ("model", "method", "task", "seed")
PER_EXAMPLE_KEYS = ("id", "prediction", "extracted", "correct")


def upgrade(d: dict[str, Any]) -> dict[str, Any]:
    """An older record as the version written now (see the module docstring's history)."""
    version = d.get("schema_version")
    if version == SCHEMA_VERSION:
        return d
    d = dict(d)
    if version == 1:
        d.setdefault("evaluations", [])  # Record.eval_tasks falls back to [config.task]
    config = d.get("config")
    if isinstance(config, dict) and isinstance(config.get("eval"), dict):
        d["config"] = {**config, "eval": {"follows": PROTOCOL_BEFORE_V3, **config["eval"]}}
    d["schema_version"] = SCHEMA_VERSION
    return d


_TOP_LEVEL = (
    "schema_version",
    "cell_id",
    "status",
    "config",
    "scores",
    "val_loss_bins",
    "train_curve",
    "costs",
    "environment",
    "provenance",
    "created_at",
)


@dataclass
class Record:
    """The result record of one grid cell (see the module docstring for the conventions)."""

    cell_id: str
    status: str
    config: dict[str, Any]
    error: str | None = None
    scores: list[Score] = field(default_factory=list)
    val_loss_bins: list[NoiseBin] = field(default_factory=list)
    train_curve: list[TrainPoint] = field(default_factory=list)
    costs: Costs = field(default_factory=Costs)
    environment: Environment = field(default_factory=Environment)
    provenance: list[Provenance] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    adapter_dir: str | None = None
    created_at: str = field(default_factory=utc_now)
    finished_at: str | None = None
    schema_version: int = SCHEMA_VERSION
    # Where the record was read from; not serialised.
    source: Path | None = field(default=None, compare=False, repr=False)

    # -- convenience accessors used by the report -------------------------------------------
    @property
    def method(self) -> str:
        return str(self.config["method"])

    @property
    def task(self) -> str:
        return str(self.config["task"])

    @property
    def eval_tasks(self) -> list[str]:
        """The tasks this cell's adapter is scored on (the cell's own task for one-task cells)."""
        return [str(t) for t in self.config.get("eval_tasks") or [self.config["task"]]]

    @property
    def train_data(self) -> str:
        """What the adapter trained on and how: e.g. ``math_14k (suite)`` or ``gsm8k (task)``."""
        mode = (self.config.get("train") or {}).get("data") or "task"
        return f"{self.config['task']} ({mode})"

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def axes(self) -> dict[str, Any]:
        return dict(self.config.get("axes") or {})

    @property
    def cell_dir(self) -> Path | None:
        return None if self.source is None else Path(self.source).parent

    def adapter_path(self) -> Path | None:
        """The adapter folder resolved against the cell folder, or None."""
        if not self.adapter_dir:
            return None
        p = Path(self.adapter_dir)
        if not p.is_absolute() and self.cell_dir is not None:
            p = self.cell_dir / p
        return p

    # -- (de)serialisation ------------------------------------------------------------------
    def validate(self) -> Record:
        """Check the invariants the report relies on; raise :class:`RecordError` if broken."""
        src = self.source
        if self.schema_version != SCHEMA_VERSION:
            raise RecordError(
                f"{_where(src)}schema version {self.schema_version!r}, this bench reads "
                f"version {SCHEMA_VERSION}"
            )
        if not isinstance(self.cell_id, str) or not self.cell_id:
            raise RecordError(f"{_where(src)}cell_id must be a non-empty string")
        if self.status not in STATUSES:
            raise RecordError(
                f"{_where(src)}status {self.status!r} is not one of {', '.join(STATUSES)}"
            )
        _require(self.config, REQUIRED_CONFIG_KEYS, "config", src)
        for key in ("method_config", "train", "eval", "axes"):
            if self.config.get(key) is not None and not isinstance(self.config[key], dict):
                raise RecordError(f"{_where(src)}config.{key} must be an object")
        for s in self.scores:
            if isinstance(s.value, float) and math.isnan(s.value) and s.per_example:
                raise RecordError(f"{_where(src)}score {s.task}/{s.metric} is NaN")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "cell_id": self.cell_id,
            "status": self.status,
            "error": self.error,
            "config": self.config,
            "scores": [s.to_dict() for s in self.scores],
            "val_loss_bins": [b.to_dict() for b in self.val_loss_bins],
            "train_curve": [p.to_dict() for p in self.train_curve],
            "costs": self.costs.to_dict(),
            "environment": self.environment.to_dict(),
            "provenance": [p.to_dict() for p in self.provenance],
            "evaluations": [e.to_dict() for e in self.evaluations],
            "adapter_dir": self.adapter_dir,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }

    @classmethod
    def from_dict(cls, d: Any, source: str | Path | None = None) -> Record:
        """Validate and build a record; every problem raises :class:`RecordError` naming
        ``source`` (the file) when given."""
        if not isinstance(d, dict):
            raise RecordError(f"{_where(source)}not a result record (top level is not an object)")
        if "schema_version" not in d:
            raise RecordError(
                f"{_where(source)}not a result record of this bench (no schema_version)"
            )
        if d["schema_version"] not in READABLE_VERSIONS:
            raise RecordError(
                f"{_where(source)}record has schema version {d['schema_version']!r}, this bench "
                f"reads versions {', '.join(map(str, READABLE_VERSIONS))}"
            )
        d = upgrade(d)
        _require(d, _TOP_LEVEL, "record", source)
        if not isinstance(d.get("evaluations") or [], list):
            raise RecordError(f"{_where(source)}evaluations must be a list")
        for key in ("scores", "val_loss_bins", "train_curve", "provenance"):
            if not isinstance(d[key], list):
                raise RecordError(f"{_where(source)}{key} must be a list")
        rec = cls(
            cell_id=d["cell_id"],
            status=d["status"],
            config=d["config"],
            error=d.get("error"),
            scores=[Score.from_dict(s, source) for s in d["scores"]],
            val_loss_bins=[NoiseBin.from_dict(b, source) for b in d["val_loss_bins"]],
            train_curve=[TrainPoint.from_dict(p, source) for p in d["train_curve"]],
            costs=Costs.from_dict(d["costs"], source),
            environment=Environment.from_dict(d["environment"], source),
            provenance=[Provenance.from_dict(p, source) for p in d["provenance"]],
            evaluations=[Evaluation.from_dict(e, source) for e in d.get("evaluations") or []],
            adapter_dir=d.get("adapter_dir"),
            created_at=d["created_at"],
            finished_at=d.get("finished_at"),
            schema_version=d["schema_version"],
            source=Path(source) if source is not None else None,
        )
        return rec.validate()
