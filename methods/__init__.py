"""PEFT methods behind one interface (`base.py`): LoRA, DoRA, static-core LoRA, NaRA, binned
LoRA, L2D, the unadapted base and the theory sandbox's rank-one LoRA.

Each method's module registers its method (`registry.register_method`); importing this package
imports every method module once, in the order `bench list methods` shows them, and the registry
itself imports none of them.
"""

# Registration order is the order `bench list methods` shows.
# isort: off
from methods import base_model  # noqa: F401
from methods import lora  # noqa: F401
from methods import dora  # noqa: F401
from methods import static_core  # noqa: F401
from methods import nara  # noqa: F401
from methods import binned  # noqa: F401
from methods import rank_one_lora  # noqa: F401
from methods import l2d  # noqa: F401

# isort: on
from methods.base import Adapter, MethodConfig, ParamCounts, adapter_of
from methods.binned import BinnedLoraConfig
from methods.dora import DoraConfig
from methods.lora import LoraMethodConfig
from methods.nara import NaraConfig, core_trajectory, merge_at, update_norms
from methods.registry import METHODS, get_method, list_methods, load_adapter, save_adapter
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
