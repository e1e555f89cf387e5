"""Store lm-eval scores: into the adapter's cell record, or a standalone lm-eval record whose id
depends on the model, the adapter and the model arguments; full results go in a sidecar file."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from harness.lmeval.scores import scores_from_results

if TYPE_CHECKING:
    from harness.lmeval.model import BenchDLLM

RESULTS_SIDECAR = "lm_eval_results.json"


def store_results(
    lm: BenchDLLM, results: dict[str, Any], limit: int | None, runs_dir: Path
) -> Path:
    """Write the scores into the cell's record, or a new lm-eval record; returns its path."""
    from results.environment import collect_environment, cpu_name
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
            else cpu_name()
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
