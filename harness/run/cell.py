"""One grid cell, top to bottom: load, adapt, fine-tune, save, evaluate, record.

A cell trains ONE adapter (on a task's training split or a suite training set) and scores it on
every task in ``cell.evaluated_tasks``. ``run_cell`` is the unit every executor runs; it raises on
failure and the runner records it. ``extend_cell`` scores a trained cell's saved adapter on what
it lacks (new sampling step counts, tasks added later, an interrupted evaluation) without
retraining.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness.config.cell import CellConfig
from harness.ground.machine_load import PhaseLoad, measure_load
from harness.models.source import checkout_model
from harness.processes.evaluation import evaluate
from harness.processes.outcome import EvalOutcome, chat_fn_for, resolve_protocol
from harness.processes.training import total_updates, train_adapter, validate_untrained
from harness.run.adapter_stamp import (
    STAMP_FILE,
    base_identity,
    base_summary,
    check_base,
    check_saved_adapter,
    note_reuse,
    reuse_problem,
    write_stamp,
)
from harness.run.cell_data import scored_split, training_split
from harness.run.stale import drop_stale

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
    # fast-sampling settings to evaluate (cache / parallel / cache_refresh); empty: the cell's own
    samplers: list[dict[str, str]] = field(default_factory=list)

    def variants(self) -> list[dict[str, str]]:
        from harness.config.cell import sampler_fields

        own = {name: getattr(self.cell.eval, name) for name in sampler_fields(self.cell.method)}
        return self.samplers or [own]


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


def run_cell(
    request: CellRequest,
    cell_dir: Path,
    device: str = "auto",
    monitor: Monitor | None = None,
    checkpoint: Callable | None = None,
):
    """Train one adapter, then score it on every evaluated task; returns the finished
    ``results.schema.Record``. ``checkpoint(record)`` receives the record after training and after
    each evaluated task (status "running"), so a crash during evaluation loses no training."""
    from methods.registry import get_method
    from results.environment import collect_environment, cpu_name
    from results.schema import Costs, NoiseBin, Provenance, Record, TrainPoint, utc_now
    from tasks.prompts import sft_pair

    monitor = monitor or Monitor()
    cell = request.cell
    from harness.costs import check_fits

    check_fits(cell, device, request.steps)  # one line before loading, if it cannot fit
    created = utc_now()
    monitor.phase("loading", 1)
    seed_everything(cell.seed)
    dlm = checkout_model(cell.model, device)  # loaded, or the worker's base reused
    seed_everything(cell.seed)  # a reused base consumed no random numbers: start from the seed
    train_split, own_test = training_split(cell)
    train_examples, val_examples = split_validation(
        train_split.examples, cell.train.val_examples, cell.seed
    )
    chat, tok = chat_fn_for(dlm), dlm.tokenizer

    def encode(examples):
        pairs = [sft_pair(ex, cell.eval.template, chat) for ex in examples]
        return [(tok.encode_prompt(prompt), tok.encode(response)) for prompt, response in pairs]

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
    base = base_identity(dlm)
    adapter_path = _save_adapter(adapter, cell_dir / ADAPTER_DIR, cell, base)
    device_obj = dlm.device
    record = Record(
        cell_id=cell.cell_id,
        status="running",
        config={
            **cell.to_dict(),
            "rank": cell.rank,
            "trained": True,  # the adapter is saved: a crash from here on only re-evaluates
            "sampling_steps": [],
            "samplers": [_label(v) for v in request.variants()],
            "train_examples": len(train_examples) if method.trains else 0,
            "val_examples": len(val_examples),
            "best_step": trained.best_step,
            "updates": trained.updates,
            "base": base_summary(base),  # which weights: the report warns when a model mixes them
        },
        val_loss_bins=[NoiseBin(**b) for b in trained.val_bins],
        train_curve=[TrainPoint(**p) for p in _thin(trained.curve)],
        costs=Costs(
            trainable_params=counts.trainable,
            total_params=counts.total - counts.adapter,
            adapter_bytes=_folder_bytes(adapter_path),
            train_time_s=trained.train_time_s,
            tokens_per_s=trained.tokens_per_s,
            peak_memory_bytes=trained.peak_memory_bytes,
            train_load_avg=train_load.load_avg,
            train_cpu_share=train_load.cpu_share,
            run_threads=train_load.run_threads,
        ),
        environment=dataclasses.replace(
            collect_environment(
                device_name=torch.cuda.get_device_name(device_obj)
                if device_obj.type == "cuda"
                else cpu_name()
            ),
            model_repairs=list(dlm.info.repairs),
        ),
        provenance=[Provenance(task=cell.task, **_provenance_fields(train_split.provenance))],
        adapter_dir=ADAPTER_DIR,
        created_at=created,
    )
    (checkpoint or _no_checkpoint)(record)
    preloaded = {cell.task: own_test} if own_test is not None else {}
    return evaluate_cell(request, cell_dir, record, dlm, monitor, checkpoint, preloaded)


def _no_checkpoint(record) -> None:
    return None


def _label(variant: dict[str, str] | None) -> str:
    """The sampler label of a variant; log-likelihood scoring (None) and the defaults: plain."""
    from harness.config.sampling import sampler_label

    return "plain" if variant is None else sampler_label(**variant)


def wanted_evaluations(request: CellRequest, protocol: str) -> list[tuple[int | None, dict | None]]:
    """(sampling steps, sampler settings) pairs for one task; (None, None) for log-likelihood."""
    if protocol != "gen":
        return [(None, None)]
    steps = list(request.steps) or [request.cell.eval.gen_length]
    return [(st, v) for st in steps for v in request.variants()]


def missing_evaluations(request: CellRequest, record) -> list[tuple[str, int | None, dict | None]]:
    """(evaluated task, sampling steps, sampler settings) asked for that the record has no score
    for. Scores written before fast sampling existed carry no sampler: they are plain."""
    from tasks.registry import get_task

    have = {(s.task, s.steps, s.sampler or "plain") for s in record.scores}
    out: list[tuple[str, int | None, dict | None]] = []
    for task in request.cell.evaluated_tasks:
        protocol = resolve_protocol(get_task(task), request.cell.eval)
        out += [
            (task, st, v)
            for st, v in wanted_evaluations(request, protocol)
            if (task, st, _label(v)) not in have
        ]
    return out


def resumable(record, cell_dir: Path) -> bool:
    """A cell killed (running) or failed after its adapter was saved: its training is recorded,
    so only its evaluation needs to run again if the adapter passes :func:`reuse_problem`."""
    return record.status in ("running", "failed") and bool(record.config.get("trained"))


def saved_adapter_problem(request: CellRequest, record, cell_dir: Path) -> str | None:
    """Why an interrupted or failed cell must be retrained rather than reuse its saved adapter
    (None: reuse it). Cheap: the stamp and the file sizes; hashes and base are checked when the
    job runs (:func:`extend_cell`)."""
    if not record.config.get("trained"):
        return "it failed before its adapter was saved"
    return reuse_problem(cell_dir / ADAPTER_DIR, request.cell)


def extend_cell(
    request: CellRequest,
    cell_dir: Path,
    record,
    device: str = "auto",
    monitor=None,
    checkpoint: Callable | None = None,
    reuse: str | None = None,
    stale: dict[str, tuple[str, str]] | None = None,
):
    """Score a trained cell's saved adapter on the (task, steps) pairs it lacks: new sampling
    step counts, tasks added to the grid later, or the rest of an interrupted evaluation.

    ``reuse`` ("running" | "failed") says the cell did not finish: its adapter must carry a
    stamp that matches the cell, file for file (SHA-256), and the base just loaded, else
    :class:`AdapterNotReusable` is raised before anything is evaluated. A finished cell's adapter
    is checked the same way when it has a stamp (older adapters have none). ``stale`` (from the
    planner, harness/run/stale.py) names tasks whose scores are dropped and scored again."""
    from methods.registry import load_adapter

    folder = cell_dir / ADAPTER_DIR
    check = check_saved_adapter(folder, request.cell, reuse)  # before loading anything
    monitor = monitor or Monitor()
    monitor.phase("loading", 1)
    seed_everything(request.cell.seed)
    dlm = checkout_model(request.cell.model, device)
    seed_everything(request.cell.seed)
    if check:
        check_base(folder, dlm, request.cell)
    if reuse is not None:
        record = note_reuse(record, folder, reuse)
    record = drop_stale(record, stale or {})  # the planner's finding; re-scored below
    load_adapter(dlm, folder)
    dlm.eval()
    return evaluate_cell(request, cell_dir, record, dlm, monitor, checkpoint)


def evaluate_cell(request, cell_dir, record, dlm, monitor, checkpoint=None, preloaded=None):
    """Score the adapter in ``dlm`` on every missing (task, steps) pair, one task at a time,
    checkpointing the record after each task; returns the record marked done."""
    from results.schema import utc_now
    from tasks.registry import get_task

    cell = request.cell
    preloaded = preloaded or {}
    config = dict(record.config)
    config["eval_tasks"] = list(dict.fromkeys([*record.eval_tasks, *cell.evaluated_tasks]))
    record = dataclasses.replace(record, config=config)
    todo: dict[str, list[tuple[int | None, dict | None]]] = {}
    for task, steps, variant in missing_evaluations(request, record):
        todo.setdefault(task, []).append((steps, variant))
    for task, plan in todo.items():
        spec = get_task(task)
        split = preloaded.get(task) or scored_split(cell, task)
        with measure_load() as load:
            outcomes = _evaluate_steps(
                dlm, spec, split.examples, cell, plan, cell_dir, monitor, task
            )
        record = _with_evaluation(record, cell, task, split, outcomes, load)
        (checkpoint or _no_checkpoint)(record)
    return dataclasses.replace(record, status="done", error=None, finished_at=utc_now())


def _with_evaluation(record, cell: CellConfig, task: str, split, outcomes, load=None):
    """The record with ``task``'s new scores, its scored-set provenance and its evaluation entry;
    the evaluation's load figures are averaged over tasks, weighted by evaluation time."""
    from results.schema import Evaluation, Provenance
    from tasks.registry import get_task

    protocol = resolve_protocol(get_task(task), cell.eval)
    provenance = list(record.provenance)
    test = Provenance(task=task, **_provenance_fields(split.provenance))
    if test not in provenance:
        provenance.append(test)
    evaluations = list(record.evaluations)
    old = next((e for e in evaluations if e.task == task), None)
    entry = Evaluation(task=task, protocol=protocol, eval_time_s=0.0, sampling_time_s=0.0)
    if old is not None:
        entry = old
        evaluations.remove(old)
    entry = dataclasses.replace(
        entry,
        n=len(split.examples),
        scored_hash=split.provenance.content_hash,
        steps=sorted({*entry.steps, *(o.steps for o in outcomes if o.steps)}),
        predictions=[*entry.predictions, *(o.predictions_file for o in outcomes)],
        eval_time_s=(entry.eval_time_s or 0.0) + sum(o.eval_time_s for o in outcomes),
        sampling_forwards=entry.sampling_forwards + sum(o.sampling_steps for o in outcomes),
        sampling_time_s=(entry.sampling_time_s or 0.0) + sum(o.sampling_time_s for o in outcomes),
    )
    evaluations.append(entry)
    forwards = sum(e.sampling_forwards for e in evaluations)
    before, added = record.costs.eval_time_s or 0.0, sum(o.eval_time_s for o in outcomes)
    costs = dataclasses.replace(
        record.costs,
        eval_time_s=sum(e.eval_time_s or 0.0 for e in evaluations),
        time_per_sampling_step_s=(
            sum(e.sampling_time_s or 0.0 for e in evaluations) / forwards if forwards else None
        ),
        eval_load_avg=_weighted(record.costs.eval_load_avg, before, load, "load_avg", added),
        eval_cpu_share=_weighted(record.costs.eval_cpu_share, before, load, "cpu_share", added),
        run_threads=record.costs.run_threads or (load.run_threads if load else None),
    )
    config = dict(record.config)
    config["sampling_steps"] = sorted({*config.get("sampling_steps", []), *entry.steps})
    labels = list(config.get("samplers") or ["plain"])
    new = (o.sampler for o in outcomes if o.sampler)
    config["samplers"] = labels + [lab for lab in dict.fromkeys(new) if lab not in labels]
    config.setdefault("protocol", protocol)  # the first evaluated task's (per task: evaluations)
    return dataclasses.replace(
        record,
        config=config,
        scores=[*record.scores, *(s for o in outcomes for s in _scores(o, split))],
        provenance=provenance,
        evaluations=evaluations,
        costs=costs,
    )


def _weighted(old: float | None, old_time: float, load, name: str, new_time: float):
    """Time-weighted mean of an earlier phase's load figure and a new one (either may be None)."""
    new = getattr(load, name, None) if load is not None else None
    if new is None or old is None:
        return new if old is None else old
    total = old_time + new_time
    return (old * old_time + new * new_time) / total if total > 0 else new


def _evaluate_steps(dlm, spec, examples, cell, plan, cell_dir, monitor, task) -> list[EvalOutcome]:
    """Evaluate ``task`` at every (steps, sampler settings) pair of ``plan``; (None, None) for
    log-likelihood."""
    from results.store import atomic_write_text

    outcomes = []
    for steps, variant in plan:
        label = _label(variant)
        shown = f"{steps} steps" + (f", {label}" if label != "plain" else "")
        monitor.phase(f"evaluating {task}" + (f" ({shown})" if steps else ""), len(examples))
        config = cell.eval.with_sampler(variant)
        outcome = evaluate(
            dlm,
            spec,
            examples,
            config,
            steps,
            cell.seed,
            on_progress=lambda done, total: monitor.update(done),
        )
        suffix = f"-steps{outcome.steps}" if outcome.steps else ""
        if label != "plain":
            suffix += "-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
        lines = [json.dumps(row, default=str) for row in outcome.score.per_example]
        outcome.predictions_file = f"predictions-{task}{suffix}.jsonl"
        atomic_write_text(cell_dir / outcome.predictions_file, "\n".join(lines) + "\n")
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
        sampler=outcome.sampler,
        sampling=outcome.sampling.to_dict() if outcome.sampling is not None else None,
        scored_set_hash=scored_hash,
        answer_rule=s.answer_rule,
    )
    extra = [
        Score(
            task=s.task,
            metric=name,
            value=float(v),
            n=s.n,
            protocol=s.protocol,
            steps=outcome.steps,
            sampler=outcome.sampler,
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


def _save_adapter(adapter, folder: Path, cell: CellConfig, base: dict) -> Path:
    """Save into a staging folder, stamp it (harness/run/adapter_stamp.py), then rename: a crash
    never leaves a half-written adapter, and a reused one is known to be this cell's."""
    staging = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    adapter.save(staging)
    write_stamp(staging, cell, base)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(staging, folder)
    return folder


def _folder_bytes(folder: Path) -> int:
    """The adapter's size on disk (its stamp, bench's bookkeeping, left out)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and f.name != STAMP_FILE)
