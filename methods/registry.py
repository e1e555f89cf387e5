"""Named PEFT methods: ``get_method(name)``, ``list_methods()``, and adapter folders that load
without being told their method (``load_adapter``).

Methods register themselves (:func:`register_method`, at the end of each method's module, as
peft's tuners do); this module imports none of them. The ``methods`` package imports every method
module, so any import of ``methods.registry`` sees them all registered.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from harness.ground.errors import BenchError
from methods.base import Adapter, Method, MethodConfig, adapter_of, read_record_file

METHODS: dict[str, Method] = {}  # in registration order (the order `bench list methods` shows)


def register_method(method: Method) -> Method:
    """Make ``method`` known by its name; each method module calls this for its own method."""
    if method.name in METHODS and type(METHODS[method.name]) is not type(method):
        raise BenchError(f"two methods are registered as {method.name!r}")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise BenchError(f"unknown method {name!r}: valid methods are {', '.join(METHODS)}")
    return METHODS[name]


def check_serves(method: Method, model: str, objective: str) -> None:
    """One line when ``method`` cannot adapt a base of this objective (e.g. nara on a causal LM)."""
    if objective not in method.objectives:
        serving = [m.name for m in METHODS.values() if objective in m.objectives]
        raise BenchError(
            f"method {method.name!r} adapts {' or '.join(method.objectives)} bases; "
            f"{model} is {objective}: methods for it are {', '.join(serving)}"
        )


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


def read_adapter_config(folder: str | Path) -> MethodConfig:
    """The config recorded in an adapter folder of any method."""
    record = read_record_file(Path(folder))
    return get_method(record["method"]).config_cls.from_dict(record["config"])


def load_adapter(dlm_base: nn.Module, folder: str | Path, trainable: bool = False) -> Adapter:
    """Load any bench adapter folder onto a fresh base model; the method is read from the folder."""
    method = get_method(read_record_file(Path(folder))["method"])
    return method.load(dlm_base, folder, trainable=trainable)


def save_adapter(dlm: nn.Module, folder: str | Path) -> Path:
    return adapter_of(dlm).save(folder)
