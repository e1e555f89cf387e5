"""One grid cell, top to bottom: load, adapt, fine-tune, save, evaluate, record.

``run_cell`` is the unit every executor runs; it raises on failure and the runner records it.
``extend_cell`` evaluates a finished cell at sampling step counts it has not seen yet, from its
saved adapter, without retraining.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness.config import CellConfig
from harness.evaluation import EvalOutcome, chat_fn_for, evaluate, resolve_protocol
from harness.load import PhaseLoad, measure_load
from harness.models.loader import load_model
from harness.train import total_updates, train_adapter, validate_untrained

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"


class Monitor:
    """Progress sink of a running cell; the runner's live view subclasses it."""

    def phase(self, name: str, total: int) -> None: ...

    def update(self, done: int, **info) -> None: ...


@dataclass
class CellRequest:
    cell: CellConfig
    steps: list[int] = field(default_factory=list)  # sampling steps to evaluate


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_validation(examples: Sequence, n_val: int, seed: int) -> tuple[list, list]:
    """Hold ``n_val`` examples out of the training split (seeded; at least one stays to train)."""
    order = list(range(len(examples)))
    random.Random(f"validation/{seed}").shuffle(order)
    n_val = min(n_val, max(0, len(examples) - 1))
    val = [examples[i] for i in sorted(order[:n_val])]
    train = [examples[i] for i in sorted(order[n_val:])]
    return train, val


def _load(cell: CellConfig, device: str):
    from tasks.registry import get_task
    from tasks.sources import load_task_data

    seed_everything(cell.seed)
    dlm = load_model(cell.model, device)
    spec = get_task(cell.task)
    data = load_task_data(
        spec, seed=cell.seed, limit=cell.eval.limit, train_limit=cell.train.train_limit
    )
    return dlm, spec, data


def run_cell(
    request: CellRequest, cell_dir: Path, device: str = "auto", monitor: Monitor | None = None
):
    """Train and evaluate one cell; returns a finished ``results.schema.Record``."""
    from methods.registry import get_method
    from results.environment import collect_environment
    from results.schema import Costs, NoiseBin, Provenance, Record, TrainPoint, utc_now
    from tasks.prompts import format_prompt

    monitor = monitor or Monitor()
    cell = request.cell
    from harness.costs import check_fits

    check_fits(cell, device, request.steps)  # one line before loading, if it cannot fit
    created = utc_now()
    monitor.phase("loading", 1)
    dlm, spec, data = _load(cell, device)
    train_examples, val_examples = split_validation(
        data.train.examples, cell.train.val_examples, cell.seed
    )
    chat, tok = chat_fn_for(dlm), dlm.tokenizer

    def encode(examples):
        return [
            (
                tok.encode_prompt(format_prompt(ex, cell.eval.template, chat)),
                tok.encode(ex.target),
            )
            for ex in examples
        ]

    method = get_method(cell.method)
    adapter = method.apply(dlm, method.config_cls.from_dict(cell.method_config))
    counts = adapter.parameter_counts()
    train_load = PhaseLoad()
    if method.trains:
        monitor.phase("training", total_updates(cell.train, len(train_examples)))
        with measure_load() as train_load:
            trained = train_adapter(
                dlm,
                adapter,
                encode(train_examples),
                encode(val_examples),
                cell.train,
                cell.seed,
                on_update=lambda step, total, loss: monitor.update(step, loss=loss),
            )
    else:  # the base model: no training, but the same validation loss per noise bin
        monitor.phase("validating", 1)
        trained = validate_untrained(dlm, encode(val_examples), cell.train)
    adapter_path = _save_adapter(adapter, cell_dir / ADAPTER_DIR)
    protocol = resolve_protocol(spec, cell.eval)
    steps_list = request.steps if protocol == "gen" else [None]
    with measure_load() as eval_load:
        outcomes = _evaluate_steps(
            dlm, spec, data.test.examples, cell, steps_list, cell_dir, monitor
        )
    sampling = [o for o in outcomes if o.sampling_steps]
    device_obj = dlm.device
    return Record(
        cell_id=cell.cell_id,
        status="done",
        config={
            **cell.to_dict(),
            "rank": cell.rank,
            "protocol": protocol,
            "sampling_steps": steps_list,
            "train_examples": len(train_examples) if method.trains else 0,
            "val_examples": len(val_examples),
            "best_step": trained.best_step,
            "updates": trained.updates,
        },
        scores=[s for outcome in outcomes for s in _scores(outcome, data.test)],
        val_loss_bins=[NoiseBin(**b) for b in trained.val_bins],
        train_curve=[TrainPoint(**p) for p in _thin(trained.curve)],
        costs=Costs(
            trainable_params=counts.trainable,
            total_params=counts.total - counts.adapter,
            adapter_bytes=_folder_bytes(adapter_path),
            train_time_s=trained.train_time_s,
            tokens_per_s=trained.tokens_per_s,
            peak_memory_bytes=trained.peak_memory_bytes,
            eval_time_s=sum(o.eval_time_s for o in outcomes),
            time_per_sampling_step_s=(
                sum(o.sampling_time_s for o in sampling) / sum(o.sampling_steps for o in sampling)
                if sampling
                else None
            ),
            train_load_avg=train_load.load_avg,
            train_cpu_share=train_load.cpu_share,
            eval_load_avg=eval_load.load_avg,
            eval_cpu_share=eval_load.cpu_share,
        ),
        environment=dataclasses.replace(
            collect_environment(
                device_name=torch.cuda.get_device_name(device_obj)
                if device_obj.type == "cuda"
                else None
            ),
            model_repairs=list(dlm.info.repairs),
        ),
        provenance=[
            Provenance(task=cell.task, **_provenance_fields(split.provenance))
            for split in (data.train, data.test)
        ],
        adapter_dir=ADAPTER_DIR,
        created_at=created,
        finished_at=utc_now(),
    )


def missing_steps(request: CellRequest, record) -> list[int]:
    """Sampling step counts asked for that a finished generative cell has no score for."""
    if record.config.get("protocol") != "gen":
        return []
    have = {s.steps for s in record.scores}
    return [s for s in request.steps if s not in have]


def extend_cell(request: CellRequest, cell_dir: Path, record, device: str = "auto", monitor=None):
    """Evaluate a finished cell's saved adapter at new step counts; returns the updated record."""
    from methods.registry import load_adapter
    from results.schema import utc_now

    monitor = monitor or Monitor()
    cell = request.cell
    steps = missing_steps(request, record)
    monitor.phase("loading", 1)
    dlm, spec, data = _load(cell, device)
    load_adapter(dlm, cell_dir / ADAPTER_DIR)
    dlm.eval()
    outcomes = _evaluate_steps(dlm, spec, data.test.examples, cell, steps, cell_dir, monitor)
    config = {**record.config, "sampling_steps": sorted({*record.config["sampling_steps"], *steps})}
    costs = dataclasses.replace(
        record.costs,
        eval_time_s=(record.costs.eval_time_s or 0) + sum(o.eval_time_s for o in outcomes),
    )
    return dataclasses.replace(
        record,
        config=config,
        scores=[*record.scores, *(s for o in outcomes for s in _scores(o, data.test))],
        costs=costs,
        finished_at=utc_now(),
    )


def _evaluate_steps(dlm, spec, examples, cell, steps_list, cell_dir, monitor) -> list[EvalOutcome]:
    from results.store import atomic_write_text

    outcomes = []
    for steps in steps_list:
        monitor.phase(f"evaluating ({steps} steps)" if steps else "evaluating", len(examples))
        outcome = evaluate(
            dlm,
            spec,
            examples,
            cell.eval,
            steps,
            cell.seed,
            on_progress=lambda done, total: monitor.update(done),
        )
        suffix = f"-steps{outcome.steps}" if outcome.steps else ""
        lines = [json.dumps(row, default=str) for row in outcome.score.per_example]
        atomic_write_text(cell_dir / f"predictions{suffix}.jsonl", "\n".join(lines) + "\n")
        outcomes.append(outcome)
    return outcomes


def _scores(outcome: EvalOutcome, scored_split) -> list:
    """The primary metric with per-example rows first, then the task's other metrics; each
    carries the content hash of the scored split it was computed on."""
    from results.schema import Score

    s = outcome.score
    scored_hash = scored_split.provenance.content_hash
    keep = ("id", "prediction", "extracted", "correct", "correct_norm", "status")
    primary = Score(
        task=s.task,
        metric=s.metric,
        value=float(s.value),
        n=s.n,
        protocol=s.protocol,
        steps=outcome.steps,
        per_example=[{k: row[k] for k in keep if k in row} for row in s.per_example],
        scored_set_hash=scored_hash,
    )
    extra = [
        Score(
            task=s.task,
            metric=name,
            value=float(v),
            n=s.n,
            protocol=s.protocol,
            steps=outcome.steps,
            scored_set_hash=scored_hash,
        )
        for name, v in s.extra.items()
        if not name.startswith("programs_")
    ]
    return [primary, *extra]


def _provenance_fields(p) -> dict:
    note = getattr(p, "note", "")
    return {
        "split": p.split,
        "source": p.source,
        "detail": p.detail + (f" ({note})" if note else ""),
        "content_hash": p.content_hash,
        "size": p.size,
        "limit": p.limit,
        "fallback_of": p.fallback_of,
    }


def _thin(curve: list[dict], keep: int = 200) -> list[dict]:
    """At most about ``keep`` points, always with the validation points and the last one."""
    stride = max(1, len(curve) // keep)
    last = len(curve) - 1
    return [p for i, p in enumerate(curve) if i % stride == 0 or "val_loss" in p or i == last]


def _save_adapter(adapter, folder: Path) -> Path:
    """Save into a staging folder, then rename: a crash never leaves a half-written adapter."""
    staging = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    adapter.save(staging)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(staging, folder)
    return folder


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
