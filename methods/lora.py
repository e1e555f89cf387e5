"""LoRA through peft: ``W0 x + s B A x``. Nothing is reimplemented here."""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import Method, MethodConfig
from methods.registry import register_method


@dataclass(frozen=True)
class LoraMethodConfig(MethodConfig):
    """LoRA has only the shared fields."""


class LoraMethod(Method):
    name = "lora"
    objectives = ("masked-diffusion", "autoregressive")
    description = "LoRA (peft): W0 x + s B A x"
    config_cls = LoraMethodConfig


register_method(LoraMethod())
