"""PEFT methods behind one interface: LoRA, DoRA, static-core LoRA, NaRA and binned LoRA (see
base.py)."""

from methods.base import Adapter, MethodConfig, ParamCounts
from methods.binned import BinnedLoraConfig
from methods.dora import DoraConfig
from methods.lora import LoraMethodConfig
from methods.nara import NaraConfig, core_trajectory, merge_at, update_norms
from methods.registry import (
    METHODS,
    adapter_of,
    get_method,
    list_methods,
    load_adapter,
    save_adapter,
)
from methods.static_core import StaticCoreConfig

__all__ = [
    "METHODS",
    "Adapter",
    "BinnedLoraConfig",
    "DoraConfig",
    "LoraMethodConfig",
    "MethodConfig",
    "NaraConfig",
    "ParamCounts",
    "StaticCoreConfig",
    "adapter_of",
    "core_trajectory",
    "get_method",
    "list_methods",
    "load_adapter",
    "merge_at",
    "save_adapter",
    "update_norms",
]
