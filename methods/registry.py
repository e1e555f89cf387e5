"""Named PEFT methods: ``get_method(name)``, ``list_methods()``, and adapter folders that load
without being told their method (``load_adapter``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from harness.errors import BenchError
from methods.base import Adapter, Method, read_method_record
from methods.base_model import BaseModelMethod
from methods.binned import BinnedLoraMethod
from methods.dora import DoraMethod
from methods.lora import LoraMethod
from methods.nara import NaraMethod
from methods.rank_one_lora import RankOneLoraMethod
from methods.static_core import StaticCoreMethod

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        BaseModelMethod(),
        LoraMethod(),
        DoraMethod(),
        StaticCoreMethod(),
        NaraMethod(),
        BinnedLoraMethod(),
        RankOneLoraMethod(),  # the theory sandbox's (harness/sandboxes.py)
    )
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise BenchError(f"unknown method {name!r}: valid methods are {', '.join(METHODS)}")
    return METHODS[name]


@dataclass(frozen=True)
class FieldRow:
    name: str
    type: str
    default: object
    help: str


@dataclass(frozen=True)
class MethodRow:
    name: str
    description: str
    noise_aware: bool
    fields: tuple[FieldRow, ...]


def list_methods() -> list[MethodRow]:
    """One row per method with its config fields and their defaults (for ``bench list methods``)."""
    rows = []
    for method in METHODS.values():
        fields = tuple(
            FieldRow(
                name=f.name,
                type=str(f.type),
                default=f.default,
                help=f.metadata.get("help", ""),
            )
            for f in dataclasses.fields(method.config_cls)
        )
        rows.append(MethodRow(method.name, method.description, method.noise_aware, fields))
    return rows


def load_adapter(dlm_base: nn.Module, folder: str | Path, trainable: bool = False) -> Adapter:
    """Load any bench adapter folder onto a fresh base model; the method is read from the folder."""
    config = read_method_record(Path(folder))
    for method in METHODS.values():
        if type(config) is method.config_cls:
            return method.load(dlm_base, folder, trainable=trainable)
    raise BenchError(f"no method takes a {type(config).__name__}")  # unreachable


def save_adapter(dlm: nn.Module, folder: str | Path) -> Path:
    return adapter_of(dlm).save(folder)


def adapter_of(dlm: nn.Module) -> Adapter:
    """The adapter handle of a model a method was applied to."""
    adapter = getattr(dlm, "_bench_adapter", None)
    if adapter is None:
        raise BenchError("this model carries no adapter: apply a method first")
    return adapter
