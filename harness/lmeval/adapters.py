"""Adapter folders for lm-eval: find them, check they fit the base model, load them onto it."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from harness.ground.errors import BenchError
from harness.models.dlm import DiffusionLM
from harness.run.adapter_paths import resolve_adapter
from methods.l2d.method import WEIGHTS_FILE as L2D_WEIGHTS

log = logging.getLogger("harness.lmeval")  # the name it logged under as one module


def check_adapter_fits(dlm: DiffusionLM, folder: Path, trained_on: str | None = None) -> None:
    """Raise one clear BenchError when ``folder`` holds an adapter for another base model:
    adapted layers the model does not have, or factor shapes that do not match its layers."""
    from safetensors import safe_open
    from torch import nn

    from methods.binned import weight_files

    files = weight_files(folder)  # its own, or one per bin (binned_lora)
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
    """Load the base model (the cell's own when ``model`` is None) and the adapter onto it: an
    adapter of another model family stops with one line; one of another base of the same family
    (other weights) loads with a warning, since evaluating it there may be the point.

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
        from harness.run.adapter_stamp import base_problem, family_problem, read_stamp

        problem = family_problem(adapter_dir, dlm)
        if problem:
            raise BenchError(problem)
        check_adapter_fits(dlm, adapter_dir, trained_on)
        other_base = read_stamp(adapter_dir) is not None and base_problem(adapter_dir, dlm)
        if trained_on and trained_on != name:
            log.warning(
                "adapter %s was trained on %r, evaluating on %r", adapter_dir, trained_on, name
            )
        elif other_base:
            log.warning("adapter %s: %s", adapter_dir, other_base)
        load_adapter(dlm, adapter_dir)
    dlm.eval()  # the adapter's dropout layers are created in training mode
    return dlm, adapter_dir, cell
