"""Load a transformers model, released remote code included, with the family's repairs applied.

For a folder or hub id whose config names its own code (``auto_map``), the class is imported
first (the very class ``AutoModel`` would use), the family patches it, and only then is it
constructed and loaded. Missing or unexpected checkpoint weights stop the load with one line:
transformers would otherwise fill missing ones with random values and only warn.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from harness.ground.errors import BenchError
from harness.models.family import Family

log = logging.getLogger(__name__)


def model_class(config, source: str, family: Family, **common) -> type | None:
    """The remote-code class ``AutoModel`` would pick, or None for built-in transformers."""
    auto_map = getattr(config, "auto_map", None) or {}
    reference = auto_map.get("AutoModel") or auto_map.get("AutoModelForMaskedLM")
    if family.name == "generic" or reference is None:
        return None
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    return get_class_from_dynamic_module(reference, source, **common)


def load_remote_model(
    source: str, family: Family, dtype: torch.dtype, **common
) -> tuple[nn.Module, tuple[str, ...]]:
    """(model, names of the repairs applied) for ``source`` under ``family``."""
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

    config = AutoConfig.from_pretrained(source, **common)
    cls = model_class(config, source, family, **common)
    repairs: tuple[str, ...] = ()
    if cls is None:
        try:
            model, loading = AutoModelForMaskedLM.from_pretrained(
                source, dtype=dtype, output_loading_info=True, **common
            )
        except ValueError:
            model, loading = AutoModel.from_pretrained(
                source, dtype=dtype, output_loading_info=True, **common
            )
        _check_loading(source, loading)
    else:
        # The released classes may override from_pretrained (Dream does, and cannot return
        # loading info), so the checkpoint's keys are compared with the model's ourselves.
        repairs = family.prepare_class(cls)
        model = cls.from_pretrained(source, config=config, dtype=dtype, **common)
        keys = checkpoint_keys(source, common.get("local_files_only", False))
        if keys is not None:
            _check_loading(source, {"missing_keys": _missing(model, keys)})
    repairs = repairs + family.repair_model(model)
    if repairs:
        log.info("repaired the released code of %s: %s", source, ", ".join(repairs))
    return model, repairs


def checkpoint_keys(source: str, local_files_only: bool = False) -> set[str] | None:
    """Tensor names stored in a folder's or cached hub model's safetensors (None: not found)."""
    import json
    from pathlib import Path

    from safetensors import safe_open

    def find(name: str) -> Path | None:
        folder = Path(source)
        if folder.is_dir():
            return folder / name if (folder / name).is_file() else None
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(source, name)
        return Path(hit) if isinstance(hit, str) else None

    index = find("model.safetensors.index.json")
    if index is not None:
        return set(json.loads(index.read_text())["weight_map"])
    single = find("model.safetensors")
    if single is None:
        return None
    with safe_open(str(single), framework="pt") as fh:
        return set(fh.keys())


def _missing(model: nn.Module, stored: set[str]) -> list[str]:
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})
    return sorted(set(model.state_dict()) - stored - tied)


def _check_loading(source: str, loading: dict) -> None:
    for kind in ("missing_keys", "mismatched_keys"):
        keys = sorted(str(k) for k in loading.get(kind) or [])
        if keys:
            more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
            what = kind.replace("_keys", "")
            raise BenchError(
                f"checkpoint {source} does not fit its model code: {what} weight {keys[0]}{more}"
            )
