"""``base``: the unadapted model, as a method with nothing to train.

It exists so that the base model's scores flow through the same grid, runner, record and report
path as every adapter (one row in the main table and in the paired-difference table). A ``base``
cell skips training, and its id ignores the seed and every training setting (``harness/run/grid.py``
normalises them), so it is evaluated once per task and sampler setting and cached like a cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from harness.ground.errors import BenchError
from methods.base import FORMAT_VERSION, Adapter, Method, ParamCounts
from methods.registry import register_method


@dataclass(frozen=True)
class NoAdapterConfig:
    """No fields: the base model has no adapter. ``rank`` is None for reports."""

    rank: ClassVar[None] = None
    scale: ClassVar[float] = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoAdapterConfig:
        if data:
            raise BenchError(
                f"method 'base' has no settings; got {', '.join(sorted(data))} "
                "(the unadapted model is evaluated as is)"
            )
        return cls()


class NoAdapter(Adapter):
    """The handle of an unadapted model: nothing to train, save or merge."""

    def adapter_parameters(self) -> list[nn.Parameter]:
        return []

    def parameter_counts(self) -> ParamCounts:
        total = sum(p.numel() for p in self.dlm.parameters())
        return ParamCounts(trainable=0, total=total, adapter=0)

    def save_weights(self, folder: Path) -> None:
        """No weights: only ``bench_method.json``, so the folder loads like any adapter folder."""

    def method_record(self) -> dict:
        return {"format": FORMAT_VERSION, "method": "base", "config": {}, "scale": 0.0}

    def merge(self) -> None:
        """Nothing to fold in."""

    def unmerge(self) -> None:
        """Nothing to take out."""

    def set_trainable(self, trainable: bool) -> None:
        """Nothing to switch."""


class BaseModelMethod(Method):
    name = "base"
    objectives = ("masked-diffusion", "autoregressive")
    description = "the unadapted base model (no training; evaluated once per task and setting)"
    config_cls = NoAdapterConfig  # type: ignore[assignment]
    trains = False

    def apply(self, dlm: nn.Module, config=None) -> Adapter:
        config = self._check_config(config)
        self._check_unadapted(dlm)
        return self._attach(dlm, config, trainable=False)

    def _attach(self, dlm: nn.Module, config, trainable: bool) -> Adapter:
        adapter = NoAdapter(self, config, dlm)
        dlm._bench_adapter = adapter
        return adapter

    def load(self, dlm_base: nn.Module, folder: str | Path, trainable: bool = False) -> Adapter:
        return self.apply(dlm_base, NoAdapterConfig())


register_method(BaseModelMethod())
