"""Keep stock peft from loading a static-core or NaRA folder as plain LoRA.

Such a folder is peft's own format (``adapter_config.json`` + ``adapter_model.safetensors``) with
the core bank stored beside the LoRA factors. Stock peft would build plain LoRA layers, ignore the
core entries and give a different model without a word (max logit difference ~0.1 measured on a
trained adapter). So the folder's ``peft_type`` is not ``"LORA"`` but a sentence that starts with
``BENCH_`` and says how to load it. Every stock entry point (``PeftModel.from_pretrained``,
``PeftConfig.from_pretrained``, ``AutoPeftModel``, transformers' ``model.load_adapter``) looks the
type up in peft's ``PEFT_TYPE_TO_CONFIG_MAPPING`` first and fails with
``KeyError: 'BENCH_NARA: ...load it with bench...'`` before touching any weight. bench's loader
reads the config with :func:`read_lora_config`, which maps the marker back to LoRA.

``bench export`` (:mod:`methods.export`) writes a plain peft LoRA folder from such an adapter.
"""

from __future__ import annotations

import json
from pathlib import Path

from peft import LoraConfig

from harness.ground.errors import BenchError

CONFIG_FILE = "adapter_config.json"
MARKER_PREFIX = "BENCH_"


def bench_only_type(method: str) -> str:
    """The ``peft_type`` written into a core adapter's config: a message stock peft will show."""
    return (
        f"{MARKER_PREFIX}{method.upper()}: a bench {method} adapter, not a plain LoRA (stock peft "
        "would drop its core matrix and give another model). Load it with bench: "
        "methods.load_adapter(model, folder), or write a plain peft LoRA folder with "
        "`bench export --adapter FOLDER --out DIR` (NaRA: add --level t)"
    )


def is_bench_only(folder: str | Path) -> bool:
    data = json.loads((Path(folder) / CONFIG_FILE).read_text())
    return str(data.get("peft_type", "")).startswith(MARKER_PREFIX)


def mark_bench_only(folder: str | Path, method: str) -> None:
    """Rewrite the folder's ``adapter_config.json`` with the bench-only ``peft_type``."""
    from results.store import atomic_write_text

    path = Path(folder) / CONFIG_FILE
    data = json.loads(path.read_text())
    data["peft_type"] = bench_only_type(method)
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_lora_config(folder: str | Path) -> LoraConfig:
    """The folder's LoRA config, whether it carries the bench-only marker or plain ``LORA``."""
    data = json.loads((Path(folder) / CONFIG_FILE).read_text())
    if str(data.get("peft_type", "")).startswith(MARKER_PREFIX):
        data["peft_type"] = "LORA"
    config = LoraConfig.from_peft_type(**data)
    if not isinstance(config, LoraConfig):
        raise BenchError(f"{folder} holds a {type(config).__name__}, not a LoRA config")
    return config
