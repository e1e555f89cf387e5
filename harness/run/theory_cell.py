"""One cell of the rank-one LoRA theory sandbox, top to bottom: teacher, base, fine-tuning, record.

The sandbox's counterpart of :func:`harness.run.cell.run_cell` (same signature, registered in
``harness/models/sandboxes.py``): the task ``attention_lora`` draws the teacher and the data, the model
``attention`` is pre-trained on ``n_pre = alpha_pre d^2`` sequences (or is the exact teacher when
``alpha_pre`` is none), the method ``rank_one_lora`` picks and fits ``u`` on ``n_ft = alpha_ft d``
sequences, and fresh noiseless test sequences score it. Scores (all on the same test set):

- ``test_error``: mean squared error per sequence of ``S0 + u u^T/sqrt(d)`` against the
  fine-tuning teacher (the primary metric);
- ``alignment``: ``cos(u, u*)``; ``norm_ratio``: ``||u|| / (sqrt(shift) ||u*||)``;
- ``pre_error``: the base's error on the pre-training teacher; ``pre_matrix_error``:
  ``||S0 - S*_pre||_F^2 / ||S*_pre||_F^2``;
- ``base_error``: the base's error on the fine-tuning teacher (no update);
- ``oracle_error``: the error of ``S0`` plus the teacher's own update (what the best direction
  would leave: the pre-training residual).

A pre-trained base depends only on the seed and the pre-training settings, so it is computed once
per run and cached in ``<run>/sandbox-bases/`` (written atomically); cells of one seed share it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import torch

from harness.ground.theory_attention import (
    FitConfig,
    attention_index,
    attention_output,
    fit_tied_attention,
    matrix_error,
    rank_one_matrix,
    sequence_errors,
)

log = logging.getLogger(__name__)

BASES_DIR = "sandbox-bases"
PROTOCOL = "regression"


def _errors(data, x, s, y) -> float:
    return float(sequence_errors(attention_output(x, s, data.beta), y).mean())


def pretrained_base(data, teacher, seed: int, cache: Path) -> tuple[torch.Tensor, dict]:
    """The base ``S0`` and how it was made: the exact teacher, a cached fit, or a new fit."""
    from tasks.attention_lora import generator, label, sample_inputs

    if data.alpha_pre is None:
        return teacher.s_pre.clone(), {"source": "exact teacher", "pretrain_time_s": 0.0}
    key = json.dumps({**data.pretraining_identity(), "seed": seed}, sort_keys=True)
    path = cache / f"base-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
    if path.is_file():
        saved = torch.load(path)
        return saved["s0"], {**saved["info"], "source": f"cached fit ({path.name})"}
    start = time.process_time()
    x = sample_inputs(data, data.n_pre, seed, "pre")
    y = label(data, x, teacher.s_pre)
    fit = FitConfig(steps=data.pre_steps, lr=data.pre_lr, ridge=data.pre_ridge)
    s0 = fit_tied_attention(x, y, data.rank, data.beta, fit, generator(seed, "pre-init"))
    info = {"pretrain_cpu_s": round(time.process_time() - start, 3), "n_pre": data.n_pre}
    cache.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + f".tmp-{os.getpid()}")
    torch.save({"s0": s0, "info": info, "identity": key}, staging)
    os.replace(staging, path)
    return s0, {**info, "source": f"fitted ({path.name})"}


# CPU seconds on one thread, fitted to the three presets' process times on the 2-core machine:
# per fine-tuning step (fixed) and per step and sequence at d = 100; per pre-training step and
# sequence at d = 100, r = 50; per cell (test set, record).
STEP_SECONDS = 2.5e-4
FT_SECONDS = 4e-7
PRE_SECONDS = 1.75e-6
CELL_SECONDS = 0.05
_BASE_OWNERS: dict[str, str] = {}  # pre-training identity -> the cell the dry run charges it to


def estimate_cell(request):
    """The dry run's cost of a sandbox cell (a ``harness.run.cell_cost.Cost``). A run fits each
    pre-trained base once, so its cost goes to the first cell of this process that needs it."""
    from harness.run.cell_cost import Cost
    from methods.rank_one_lora import RankOneLoraConfig
    from tasks.attention_lora import AttentionLoraData

    cell = request.cell
    data = AttentionLoraData.from_dict(cell.task_config)
    method = RankOneLoraConfig.from_dict(cell.method_config)
    active = method.selection != "random"
    # active: ``rounds`` fits on a growing labelled set, on average half of n_ft each
    fits, sequences = (method.rounds, data.n_ft / 2) if active else (1, data.n_ft)
    updates = method.steps * fits
    scale = data.d * data.seq_len / 200
    seconds = CELL_SECONDS + updates * (STEP_SECONDS + FT_SECONDS * sequences * scale)
    if data.n_pre is not None:
        key = json.dumps({**data.pretraining_identity(), "seed": cell.seed}, sort_keys=True)
        if _BASE_OWNERS.setdefault(key, cell.cell_id) == cell.cell_id:
            width = data.d * data.rank * data.seq_len / 10_000
            seconds += PRE_SECONDS * data.pre_steps * data.n_pre * width
    return Cost(updates=updates, train_examples=data.n_ft, seconds=seconds)


def _cache_dir(cell_dir: Path) -> Path:
    """``<run>/sandbox-bases`` for a cell in ``<run>/cells/<id>``, else the cell's own folder."""
    cell_dir = Path(cell_dir)
    if cell_dir.parent.name == "cells":
        return cell_dir.parent.parent / BASES_DIR
    return cell_dir / BASES_DIR


@functools.lru_cache(maxsize=1)
def _environment():
    """Package versions and git state once per process (a grid runs hundreds of short cells)."""
    from results.environment import collect_environment

    return collect_environment(device_name="cpu")


def run_theory_cell(request, cell_dir: Path, device: str = "auto", monitor=None, checkpoint=None):
    """Run one sandbox cell on one CPU thread and return its finished record (``device`` is not
    used: a cell takes well under a second of CPU, pre-training a few seconds).

    One thread, because these tensors are small: 200 pre-training steps at alpha_pre = 0.15 took
    0.5 s of CPU on one thread and 9.9 s on two, on the 2-core machine at load average 14."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(request, cell_dir, monitor)
    finally:
        torch.set_num_threads(threads)


def _run(request, cell_dir: Path, monitor):
    from harness.run.cell import Monitor, seed_everything
    from methods.rank_one_lora import RankOneLoraConfig, alignment, fit_rank_one
    from methods.rank_one_selection import select
    from results.schema import Costs, Evaluation, Provenance, Record, Score, TrainPoint, utc_now
    from tasks.attention_lora import (
        AttentionLoraData,
        generator,
        label,
        make_teacher,
        pool_noise,
        sample_inputs,
    )

    monitor = monitor or Monitor()
    cell = request.cell
    created = utc_now()
    seed_everything(cell.seed)
    data = AttentionLoraData.from_dict(cell.task_config)
    method = RankOneLoraConfig.from_dict(cell.method_config)
    teacher = make_teacher(data, cell.seed)

    monitor.phase("pre-training", 1)
    s0, base_info = pretrained_base(data, teacher, cell.seed, _cache_dir(cell_dir))

    monitor.phase("fine-tuning", 1)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    # Random selection labels the pool's first n_ft sequences: only those are drawn.
    pool_size = data.n_ft if method.selection == "random" else data.pool * data.n_ft
    pool = sample_inputs(data, pool_size, cell.seed, "pool")
    noise = pool_noise(data, pool_size, cell.seed)

    def labels(ids: torch.Tensor) -> torch.Tensor:
        return label(data, pool[ids], teacher.s_ft) + noise[ids]

    init = generator(cell.seed, "init")
    h0 = attention_index(pool, s0)  # the frozen base's index: computed once
    picked = select(h0, pool, labels, data.n_ft, data.beta, method, init)
    curve: list[tuple[int, float]] = []
    x, y = pool[picked], labels(picked)
    u = fit_rank_one(h0[picked], x, y, data.beta, method, init, curve=curve)
    train_wall, train_cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu

    monitor.phase("testing", 1)
    x_test = sample_inputs(data, data.n_test, cell.seed, "test")
    y_test = label(data, x_test, teacher.s_ft)
    oracle = s0 + data.shift * rank_one_matrix(teacher.u_star)
    star_norm = float(teacher.u_star.norm()) * data.shift**0.5
    values = {
        "test_error": _errors(data, x_test, s0 + rank_one_matrix(u), y_test),
        "alignment": alignment(u, teacher.u_star),
        "norm_ratio": float(u.norm()) / star_norm if star_norm > 0 else 0.0,
        "pre_error": _errors(data, x_test, s0, label(data, x_test, teacher.s_pre)),
        "pre_matrix_error": matrix_error(s0, teacher.s_pre),
        "base_error": _errors(data, x_test, s0, y_test),
        "oracle_error": _errors(data, x_test, oracle, y_test),
    }
    scores = [
        Score(task=cell.task, metric=name, value=value, n=data.n_test, protocol=PROTOCOL)
        for name, value in values.items()
    ]
    detail = f"teacher seed {cell.seed}, d={data.d}, L={data.seq_len}, r={data.rank}"
    return Record(
        cell_id=cell.cell_id,
        status="done",
        config={
            **cell.to_dict(),
            "rank": 1,
            "n_pre": data.n_pre,
            "n_ft": data.n_ft,
            "pool_size": data.pool * data.n_ft,
            "base": base_info,
            "train_cpu_s": round(train_cpu, 3),
        },
        scores=scores,
        train_curve=[TrainPoint(step=s, loss=loss, lr=method.lr) for s, loss in curve],
        costs=Costs(
            trainable_params=data.d, total_params=data.d * data.rank, train_time_s=train_wall
        ),
        environment=_environment(),
        provenance=[
            Provenance(
                cell.task,
                "train",
                "synthetic",
                f"{detail}, n_ft={data.n_ft}, "
                f"{method.selection} of {data.pool * data.n_ft}, noise {data.noise}",
                size=data.n_ft,
            ),
            Provenance(cell.task, "test", "synthetic", f"{detail}, noiseless", size=data.n_test),
        ],
        evaluations=[Evaluation(task=cell.task, protocol=PROTOCOL, n=data.n_test, eval_time_s=0.0)],
        created_at=created,
        finished_at=utc_now(),
    )
