"""DoRA through peft (``LoraConfig(use_dora=True)``): a learned magnitude per output row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from methods.base import Method, MethodConfig
from methods.registry import register_method


@dataclass(frozen=True)
class DoraConfig(MethodConfig):
    """DoRA has only the shared fields."""


class DoraMethod(Method):
    name = "dora"
    objectives = ("masked-diffusion", "autoregressive")
    description = "DoRA (peft, use_dora): m * (W0 + s B A) / ||W0 + s B A||"
    config_cls = DoraConfig

    def count_parameters(self, arch, config: MethodConfig) -> int:
        """LoRA's, plus one magnitude per output row of every adapted linear."""
        return self.lora_parameters(arch, config, per_output=1)

    def extra_lora_kwargs(self, config: MethodConfig) -> dict[str, Any]:
        return {"use_dora": True}


register_method(DoraMethod())
