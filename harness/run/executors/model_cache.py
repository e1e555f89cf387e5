"""A worker's base model, loaded once and reused cell after cell.

Loading an 8B base takes minutes per cell; a worker that keeps it loaded pays that once per base.
After each cell the adapter is taken out again: peft's ``unload()`` puts the original base layers
back (no merge, so the weights are never touched), the noise channel is replaced by a fresh one,
and parameter flags and train/eval modes are set back to what they were right after loading.

Then the base is checked before it is handed to the next cell:

- always, its structure: module names and types, hooks, plain attributes (gradient-checkpointing
  flags and the like), the model config, parameter and buffer names, shapes, dtypes, devices and
  ``requires_grad``. Anything a cell left behind makes the worker drop the model and load it
  again, so a method that changes its base in some way restore does not know never leaks into
  the next cell; it only costs a reload.
- in check mode (``BENCH_CHECK_BASE=1``, and in the tests), also an exact SHA-256 of every
  parameter and buffer, before the cell and after it. A difference drops the model and is logged
  as an error, and the checksum each cell started from is written into its record
  (``environment.placement.base_checksum``).

A cell that raised leaves its model in an unknown state: it is dropped. A worker holds one base
at a time; a cell on another base (or device) drops the held one first.
"""

from __future__ import annotations

import enum
import gc
import hashlib
import json
import logging
import os
import time

import torch
from torch import nn

from harness.models.dlm import DiffusionLM

log = logging.getLogger(__name__)


def check_mode() -> bool:
    return os.environ.get("BENCH_CHECK_BASE", "") not in ("", "0")


def weights_checksum(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    tensors = [*model.named_parameters(), *model.named_buffers()]
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        data = tensor.detach().contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.view(torch.uint8).cpu().numpy().tobytes())
    return digest.hexdigest()


_PLAIN = (bool, int, float, str, type(None), enum.Enum)


def structure(dlm: nn.Module) -> list:
    """Everything but the weights' values that a cell could leave changed on the model."""
    out: list = [sorted(k for k in vars(dlm) if not k.startswith("_") or k == "_bench_adapter")]
    for name, module in dlm.named_modules():
        hooks = [
            len(getattr(module, attr, {}) or {})
            for attr in (
                "_forward_hooks",
                "_forward_pre_hooks",
                "_backward_hooks",
                "_backward_pre_hooks",
                "_state_dict_hooks",
                "_load_state_dict_pre_hooks",
            )
        ]
        attrs = sorted((k, repr(v)) for k, v in vars(module).items() if isinstance(v, _PLAIN))
        out.append((name, type(module).__qualname__, hooks, attrs))
    for name, p in dlm.named_parameters():
        out.append((name, tuple(p.shape), str(p.dtype), str(p.device), p.requires_grad))
    for name, b in dlm.named_buffers():
        out.append((name, tuple(b.shape), str(b.dtype), str(b.device)))
    config = getattr(getattr(dlm, "backbone", None), "config", None)
    if hasattr(config, "to_dict"):
        out.append(json.dumps(config.to_dict(), sort_keys=True, default=str))
    return out


def restore_base(dlm: DiffusionLM) -> None:
    """Take the cell's adapter out of ``dlm`` (the inverse of ``method.apply`` / ``load``)."""
    from peft import PeftModel

    adapter = getattr(dlm, "_bench_adapter", None)
    detach = getattr(adapter, "detach_channel", None)
    if callable(detach):
        detach()
    if "_bench_adapter" in vars(dlm):
        del dlm._bench_adapter
    if isinstance(dlm.backbone, PeftModel):
        dlm.backbone = dlm.backbone.unload()
    dlm.reset_channel()
    dlm.zero_grad(set_to_none=True)


class BaseModelCache:
    """One worker's model source (``harness.models.source.ModelSource``) that keeps the base."""

    def __init__(self, check: bool | None = None) -> None:
        self.check = check_mode() if check is None else check
        self.dlm: DiffusionLM | None = None
        self.key: tuple[str, str] | None = None
        self.last_load_s: float | None = None
        self.last_checksum: str | None = None
        self.loads = 0
        self.reuses = 0
        self.dropped: list[str] = []  # why a held base was not reused
        self._structure: list | None = None
        self._flags: dict[str, bool] = {}
        self._modes: dict[str, bool] = {}
        self._checksum: str | None = None

    @property
    def holds(self) -> str | None:
        """The base model name held now (a free worker prefers cells on it)."""
        return None if self.key is None else self.key[0]

    def checkout(self, name: str, device: str) -> DiffusionLM:
        from harness.models.loader import load_model, resolve_device

        key = (name, str(resolve_device(device)))
        if self.dlm is not None and self.key == key:
            self.last_load_s = 0.0
            self.reuses += 1
            self.last_checksum = self._checksum
            return self.dlm
        self.drop(None)
        start = time.perf_counter()
        dlm = load_model(name, device)
        self.last_load_s = time.perf_counter() - start
        self.loads += 1
        self.dlm, self.key = dlm, key
        self._structure = structure(dlm)
        self._flags = {n: p.requires_grad for n, p in dlm.named_parameters()}
        self._modes = {n: m.training for n, m in dlm.named_modules()}
        self._checksum = weights_checksum(dlm) if self.check else None
        self.last_checksum = self._checksum
        return dlm

    def release(self, ok: bool) -> None:
        if self.dlm is None:
            return
        if not ok:
            self.drop("the cell failed")
            return
        try:
            restore_base(self.dlm)
            for name, p in self.dlm.named_parameters():
                p.requires_grad_(self._flags.get(name, p.requires_grad))
            for name, module in self.dlm.named_modules():
                module.training = self._modes.get(name, module.training)
        except Exception as err:  # noqa: BLE001 - an unrestorable base is simply reloaded
            self.drop(f"restoring it failed: {type(err).__name__}: {err}")
            return
        if structure(self.dlm) != self._structure:
            self.drop("the cell left its structure changed (hooks, flags or layers)")
            return
        if self.check and weights_checksum(self.dlm) != self._checksum:
            log.error("the base weights changed during a cell; dropping the model")
            self.drop("its weights changed (checksum)")

    def drop(self, why: str | None) -> None:
        """Forget the held base (and free its memory before a new one loads)."""
        if self.dlm is None:
            return
        if why:
            log.warning("not reusing the base %s: %s", self.key[0], why)
            self.dropped.append(why)
        self.dlm, self.key, self._structure = None, None, None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
