"""Static-core LoRA: ``W0 x + s B C A x`` with ``C = I + eta P``, P (r x r) zero-initialised.

NaRA with the noise input removed: it separates "a core matrix" from "a noise-dependent core
matrix". One global P shared by every adapted layer by default (as in the NaRA release);
``core_sharing`` gives one P per module type or per layer instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.core import CoreBank, StaticCore
from methods.core_method import CoreConfig, CoreMethod
from methods.registry import register_method


@dataclass(frozen=True)
class StaticCoreConfig(CoreConfig):
    """Shared fields plus c_scale (eta) and core_sharing."""


class StaticCoreMethod(CoreMethod):
    name = "static_core"
    description = "static-core LoRA: s B (I + eta P) A x, one learned P (r x r), zero-init"
    config_cls = StaticCoreConfig

    def make_bank(self, config, groups, mask_id):
        return CoreBank({g: StaticCore(config.rank, config.c_scale) for g in groups})

    def core_parameters(self, config) -> int:
        return config.rank * config.rank


register_method(StaticCoreMethod())
