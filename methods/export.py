"""``bench export``: a plain peft LoRA folder from any bench adapter, for use outside bench.

The update of a core adapter is ``s B C^T A`` (orientation in :mod:`methods.core`), so folding the
core into B, ``B' = B C^T``, gives a plain LoRA with the same ``A``, rank, scale, dropout and
targets whose update is identical:

- ``static_core``: exact at every noise level (C does not depend on it).
- ``nara``: exact at the chosen level ``t`` only (``C(t)``); ``--level`` is required. A NaRA
  adapter conditioned on the mask density (``conditioning=density|both``) reads every input's
  mask layout, which no single level stands for, so it is refused.
- ``binned_lora``: the adapter of the bin ``t`` falls in, copied as it is (it is a plain LoRA),
  exact for every level in that bin; ``--level`` is required.
- ``lora`` and ``dora``: their files are copied as they are (they already load with stock peft).

The folder also gets a ``bench_method.json`` (method ``lora``, or ``dora``) so bench loads it too,
with ``exported_from`` saying where it came from and at which level.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from harness.ground.errors import BenchError
from methods.base import FORMAT_VERSION, METHOD_FILE, MethodConfig
from methods.binned import BinnedLoraConfig, bin_folder
from methods.core import _key
from methods.core_method import WEIGHTS_FILE, CoreConfig, group_of
from methods.lora import LoraMethodConfig
from methods.nara import NaraConfig, _cores, offline_bank
from methods.peft_guard import CONFIG_FILE, read_lora_config
from methods.registry import read_adapter_config

LORA_FIELDS = ("rank", "alpha", "scaling", "dropout", "target_modules")


@dataclass(frozen=True)
class Exported:
    folder: Path
    method: str  # the source adapter's method
    level: float | None  # the noise level a NaRA adapter was exported at
    layers: int  # LoRA layers written
    bin: int | None = None  # binned_lora: the bin exported (of ``bins``)
    bins: int | None = None


def export_adapter(
    adapter_dir: str | Path, out: str | Path, level: float | None = None
) -> Exported:
    """Write ``out`` as a plain peft LoRA (or DoRA) folder equal to the adapter in
    ``adapter_dir`` (at noise level ``level`` for NaRA and binned_lora). ``out`` must not exist or be empty."""
    adapter_dir, out = Path(adapter_dir), Path(out)
    record_file = adapter_dir / METHOD_FILE
    if record_file.is_file() and json.loads(record_file.read_text()).get("method") == "l2d":
        raise BenchError(
            "an L2D adapter is a second stream beside the base, not a weight update: it has no "
            "plain peft LoRA equivalent (load it with bench's load_adapter)"
        )
    if isinstance(read_adapter_config(adapter_dir), BinnedLoraConfig):
        return _export_bin(adapter_dir, out, level)
    name, config, bank, state, _ = offline_bank(adapter_dir)
    _check_level(name, config, level)
    staging = _staging(out)
    if bank is None:  # lora, dora: already plain peft
        for file in (CONFIG_FILE, WEIGHTS_FILE, METHOD_FILE):
            shutil.copy2(adapter_dir / file, staging / file)
        layers = sum(k.endswith(".lora_A.weight") for k in state)
        record = json.loads((adapter_dir / METHOD_FILE).read_text())
    else:
        cores = _cores(bank, config.rank, np.array([0.0 if level is None else level]))
        folded, layers = fold_cores(state, cores, config)
        save_file(folded, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
        lora_config = read_lora_config(adapter_dir)
        lora_config.save_pretrained(str(staging))  # peft_type LORA: the core is gone
        record = {
            "format": FORMAT_VERSION,
            "method": "lora",
            "config": _lora_fields(config),
            "scale": config.scale,
        }
    _finish(staging, out, record, _source(adapter_dir, name, level))
    return Exported(out, name, level, layers)


def _staging(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BenchError(f"--out {out} already exists and is not an empty folder: choose another")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _source(adapter_dir: Path, name: str, level: float | None) -> dict:
    source = {"folder": str(adapter_dir.resolve()), "method": name}
    if level is not None:
        source["level"] = level
    return source


def _finish(staging: Path, out: Path, record: dict, source: dict) -> None:
    record["exported_from"] = source
    (staging / METHOD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    if out.exists():
        out.rmdir()
    staging.rename(out)


def _export_bin(adapter_dir: Path, out: Path, level: float | None) -> Exported:
    """The bin adapter ``level`` falls in, as a plain peft LoRA folder (method ``lora``)."""
    if level is None:
        raise BenchError(
            "a binned_lora adapter holds one LoRA per noise bin: pass --level t (0..1) to "
            "export the bin t falls in"
        )
    if not 0.0 <= level <= 1.0:
        raise BenchError(f"--level must be in [0, 1], got {level}")
    bin_dir, k, bins = bin_folder(adapter_dir, level)
    config = read_adapter_config(adapter_dir)
    staging = _staging(out)
    shutil.copy2(bin_dir / WEIGHTS_FILE, staging / WEIGHTS_FILE)
    read_lora_config(bin_dir).save_pretrained(str(staging))  # peft_type LORA: one bin, plain
    layers = sum(key.endswith(".lora_A.weight") for key in load_file(str(staging / WEIGHTS_FILE)))
    record = {
        "format": FORMAT_VERSION,
        "method": "lora",
        "config": _lora_fields(config),
        "scale": config.scale,
    }
    source = _source(adapter_dir, "binned_lora", level)
    source["bin"] = {"index": k, "bins": bins, "covers": [k / bins, (k + 1) / bins]}
    _finish(staging, out, record, source)
    return Exported(out, "binned_lora", level, layers, bin=k, bins=bins)


def _check_level(name: str, config: MethodConfig, level: float | None) -> None:
    if name == "nara":
        if level is None:
            raise BenchError(
                "a NaRA adapter's update depends on the noise level: pass --level t (0..1), "
                "the level the exported plain LoRA will equal NaRA at"
            )
        assert isinstance(config, NaraConfig)
        if config.conditioning in ("density", "both"):
            raise BenchError(
                f"this NaRA adapter is conditioned on the mask density ({config.conditioning}), "
                "which differs for every input: it has no plain-LoRA equivalent at one level"
            )
    elif level is not None:
        raise BenchError(f"--level is only for NaRA and binned_lora adapters; this one is {name!r}")
    if level is not None and not 0.0 <= level <= 1.0:
        raise BenchError(f"--level must be in [0, 1], got {level}")


def fold_cores(
    state: dict[str, torch.Tensor], cores: dict[str, torch.Tensor], config: CoreConfig
) -> tuple[dict[str, torch.Tensor], int]:
    """The LoRA factors of ``state`` with each layer's core folded into B: ``B' = B C^T``.

    ``cores`` maps a bank key to C of shape (1, r, r). Core-bank entries are dropped."""
    out: dict[str, torch.Tensor] = {}
    layers = 0
    for key, value in state.items():
        if ".lora_" not in key or key.startswith("base_model.lora_core"):
            continue
        if key.endswith(".lora_B.weight"):
            layer = key.removeprefix("base_model.model.").removesuffix(".lora_B.weight")
            core = cores[_key(group_of(layer, config.core_sharing))][0]
            value = (value.double() @ core.double().T).to(value.dtype)
            layers += 1
        out[key] = value.contiguous()
    return out, layers


def _lora_fields(config: MethodConfig) -> dict:
    fields = config.to_dict()
    return LoraMethodConfig.from_dict({k: fields[k] for k in LORA_FIELDS}).to_dict()
