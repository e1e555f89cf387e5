"""Builders of valid records for tests (of the report, and of anything reading records)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from results.schema import (
    Costs,
    Environment,
    NoiseBin,
    Provenance,
    Record,
    Score,
    TrainPoint,
)
from results.store import CELLS_DIR, write_record


def cell_id_for(config: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def make_record(
    method: str = "lora",
    task: str = "synth_math",
    seed: int = 0,
    correct: Sequence[float | bool] | dict[int, Sequence[float | bool]] | None = (1, 0, 1, 1),
    *,
    status: str = "done",
    suite: str | None = None,
    rank: int | None = 8,
    axes: dict[str, Any] | None = None,
    metric: str = "accuracy",
    trainable_params: int = 1000,
    total_params: int = 100_000,
    bins: Sequence[tuple[float, float]] | None = None,
    eval_cfg: dict[str, Any] | None = None,
    provenance: list[Provenance] | None = None,
    adapter_dir: str | None = None,
    error: str | None = None,
    train_time_s: float = 10.0,
    scored_set_hash: str | None = None,
) -> Record:
    """A record whose score equals the mean of its per-example ``correct`` values (ids ex0,
    ex1, ...). ``correct`` may map sampling-step counts to lists to record several steps.
    ``bins`` gives (weighted_loss, ce_per_token) for each of the noise bins."""
    axes = dict(axes or {})
    config = {
        "model": "tiny",
        "method": method,
        "method_config": {},
        "task": task,
        "suite": suite if suite is not None else task,
        "seed": seed,
        "rank": rank,
        "train": {"lr": 1e-3, "steps": 10},
        "eval": dict(eval_cfg or {"protocol": "generate", "sampler": "low_confidence"}),
        "axes": axes,
    }
    scores = []
    if status == "done" and correct is not None:
        by_steps = correct if isinstance(correct, dict) else {None: correct}
        for steps, values in by_steps.items():
            per = [
                {"id": f"ex{i}", "prediction": str(v), "extracted": str(v), "correct": v}
                for i, v in enumerate(values)
            ]
            value = sum(float(v) for v in values) / len(values)
            scores.append(
                Score(
                    task,
                    metric,
                    value,
                    len(values),
                    "generate",
                    steps,
                    per_example=per,
                    scored_set_hash=scored_set_hash,
                )
            )
    nb = []
    if status == "done" and bins is not None:
        k = len(bins)
        nb = [NoiseBin(i / k, (i + 1) / k, w, ce, 100) for i, (w, ce) in enumerate(bins)]
    return Record(
        cell_id=cell_id_for(config),
        status=status,
        config=config,
        error=error
        if error is not None
        else ("Traceback...\nRuntimeError: boom" if status == "failed" else None),
        scores=scores,
        val_loss_bins=nb,
        train_curve=[TrainPoint(0, 2.0, 1e-3), TrainPoint(10, 1.0, 1e-3, val_loss=1.1)]
        if status == "done"
        else [],
        costs=Costs(
            trainable_params=trainable_params,
            total_params=total_params,
            adapter_bytes=trainable_params * 4,
            train_time_s=train_time_s,
            tokens_per_s=1000.0,
            peak_memory_bytes=None,
            eval_time_s=2.0,
            time_per_sampling_step_s=0.01,
        )
        if status == "done"
        else Costs(),
        environment=Environment(
            packages={"torch": "2.13.0"},
            git_commit="abc123",
            git_dirty=False,
            device_name="cpu",
            threads=2,
            python="3.12",
        ),
        provenance=list(provenance or []),
        adapter_dir=adapter_dir,
        finished_at="2026-01-01T00:00:00+00:00" if status != "running" else None,
    )


def write_run(run_dir: str | Path, records: Sequence[Record]) -> Path:
    """Write ``records`` into ``run_dir/cells/<cell_id>/record.json``; return ``run_dir``."""
    run_dir = Path(run_dir)
    for r in records:
        write_record(run_dir / CELLS_DIR / r.cell_id, r)
    return run_dir
