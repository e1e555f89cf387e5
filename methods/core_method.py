"""What static-core LoRA and NaRA share: building peft's LoRA with :class:`CoreLoraLinear`,
attaching the core bank, binding the layers to it, subscribing to the noise channel, and loading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file
from torch import nn

from harness.ground.errors import BenchError
from methods.base import (
    METHOD_FILE,
    Adapter,
    Method,
    MethodConfig,
    _help,
    read_method_record,
)
from methods.core import CoreBank, CoreLoraLinear
from methods.peft_guard import mark_bench_only, read_lora_config
from methods.registry import read_adapter_config
from methods.targets import module_type

ADAPTER_NAME = "default"
CORE_ATTR = "lora_core"  # on peft's LoraModel; the "lora_" prefix marks it as adapter state
SHARINGS = ("global", "module_type", "layer")
WEIGHTS_FILE = "adapter_model.safetensors"


@dataclass(frozen=True)
class CoreConfig(MethodConfig):
    c_scale: float = field(default=0.1, metadata=_help("eta in C = I + eta * (P or F(e(t)))"))
    core_sharing: str = field(
        default="global",
        metadata=_help(
            "one core for all layers (global) | per module_type (q_proj...) | per layer"
        ),
    )
    core_lr_scale: float = field(
        default=1.0,
        metadata=_help(
            "learning rate of the core parameters (P or the hypernetwork) relative to A and B"
        ),
    )

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.core_lr_scale, (int, float)) or not self.core_lr_scale > 0:
            raise BenchError(f"core_lr_scale must be a positive number, got {self.core_lr_scale!r}")
        if not isinstance(self.c_scale, (int, float)) or not self.c_scale > 0:
            raise BenchError(f"c_scale must be a positive number, got {self.c_scale!r}")
        if self.core_sharing not in SHARINGS:
            raise BenchError(
                f"core_sharing must be one of {', '.join(SHARINGS)}, got {self.core_sharing!r}"
            )


def group_of(layer_name: str, sharing: str) -> str:
    if sharing == "global":
        return "all"
    if sharing == "module_type":
        return module_type(layer_name)
    return layer_name


class CoreAdapter(Adapter):
    """An adapter whose layers read a core bank: static-core LoRA and NaRA."""

    def __init__(self, method: Method, config: MethodConfig, dlm: nn.Module, bank: CoreBank):
        super().__init__(method, config, dlm)
        self.bank = bank
        self._hook = None
        self._stage1_frozen: list[nn.Parameter] = []

    def trainable_parameters(self) -> list[nn.Parameter]:
        frozen = {id(p) for p in self._stage1_frozen}
        return [p for p in self.adapter_parameters() if p.requires_grad or id(p) in frozen]

    def parameter_counts(self):
        counts = super().parameter_counts()
        extra = sum(p.numel() for p in self._stage1_frozen)
        return type(counts)(counts.trainable + extra, counts.total, counts.adapter)

    @property
    def bank_device(self) -> torch.device:
        for tensor in [*self.bank.parameters(), *self.bank.buffers()]:
            return tensor.device
        return torch.device("cpu")

    def core_parameters(self) -> list[nn.Parameter]:
        return list(self.bank.parameters())

    def optimizer_groups(self) -> list[dict]:
        """A and B at the base learning rate; the core's parameters at ``core_lr_scale`` times
        it (with the release's eta = 0.1 the core barely moves at a small budget otherwise)."""
        core = {id(p) for p in self.core_parameters()}
        params = self.trainable_parameters()
        groups = [{"params": [p for p in params if id(p) not in core], "lr_scale": 1.0}]
        core_params = [p for p in params if id(p) in core]
        if core_params:
            groups.append({"params": core_params, "lr_scale": float(self.config.core_lr_scale)})
        return groups

    def save(self, folder: str | Path) -> Path:
        """peft's folder, marked so that stock peft refuses it (see :mod:`methods.peft_guard`)."""
        folder = super().save(folder)
        mark_bench_only(folder, self.method.name)
        return folder

    def detach_channel(self) -> None:
        self.dlm.channel.unsubscribe(self.bank.on_level)
        if self._hook is not None:
            self._hook.remove()
            self._hook = None


class CoreMethod(Method):
    """A LoRA variant with a core matrix between A and B (see :mod:`methods.core`)."""

    config_cls = CoreConfig

    def make_bank(self, config: MethodConfig, groups: list[str], mask_id: int | None) -> CoreBank:
        raise NotImplementedError

    def core_parameters(self, config: MethodConfig) -> int:
        """Parameters of one core (a static P, or NaRA's hypernetwork)."""
        raise NotImplementedError

    def count_parameters(self, arch, config: MethodConfig) -> int:
        """LoRA's, plus one core per sharing group of the adapted linears."""
        targets = self.cost_targets(arch, config)
        layer_names = [
            f"copy{c}.layers.{n}.{t}"
            for c in range(arch.adapter_copies)
            for n in range(arch.layers)
            for t in targets
        ]
        groups = len({group_of(name, config.core_sharing) for name in layer_names})
        return self.lora_parameters(arch, config) + groups * self.core_parameters(config)

    def lora_config(self, config: MethodConfig, targets: list[str], trainable: bool) -> LoraConfig:
        lora_config = super().lora_config(config, targets, trainable)
        lora_config._register_custom_module({nn.Linear: CoreLoraLinear})
        return lora_config

    def _attach(self, dlm: nn.Module, config: MethodConfig, trainable: bool) -> Adapter:
        peft_model = dlm.backbone
        tuner = peft_model.base_model
        layers = {
            name: module
            for name, module in tuner.model.named_modules()
            if isinstance(module, CoreLoraLinear)
        }
        if not layers:
            raise BenchError("no layer was adapted: check target_modules")
        groups = {name: group_of(name, config.core_sharing) for name in layers}
        # no mask token (uniform noise, DiffusionGemma): no mask-density feature either
        has_mask = getattr(getattr(dlm, "tokenizer", None), "has_mask_token", True)
        mask_id = getattr(dlm, "mask_id", None) if has_mask else None
        bank = self.make_bank(config, sorted(set(groups.values())), mask_id)
        first = next(iter(layers.values()))
        bank.to(first.lora_A[ADAPTER_NAME].weight.device)
        setattr(tuner, CORE_ATTR, nn.ModuleDict({ADAPTER_NAME: bank}))
        for name, layer in layers.items():
            layer.bind_core(ADAPTER_NAME, bank, groups[name])
        for p in bank.parameters():
            p.requires_grad_(trainable)
        adapter = self.adapter_cls(self, config, dlm, bank)
        dlm.channel.subscribe(bank.on_level)
        if bank.needs_input_ids:
            adapter._hook = peft_model.register_forward_pre_hook(
                bank.on_backbone_call, with_kwargs=True
            )
        dlm._bench_adapter = adapter
        return adapter

    adapter_cls: type[CoreAdapter] = CoreAdapter

    def load(self, dlm_base: nn.Module, folder: str | Path, trainable: bool = False) -> Adapter:
        folder = Path(folder)
        config = read_method_record(folder, expect=self)
        self._check_unadapted(dlm_base)
        lora_config = read_lora_config(folder)
        lora_config.inference_mode = not trainable
        lora_config._register_custom_module({nn.Linear: CoreLoraLinear})
        dlm_base.backbone = get_peft_model(dlm_base.backbone, lora_config)
        adapter = self._attach(dlm_base, config, trainable=trainable)
        state = load_file(str(folder / WEIGHTS_FILE), device=str(adapter.bank_device))
        result = set_peft_model_state_dict(dlm_base.backbone, state, adapter_name=ADAPTER_NAME)
        missing = [k for k in result.missing_keys if "lora_" in k]
        if result.unexpected_keys or missing:
            raise BenchError(
                f"{folder} does not match a {self.name} adapter of this model: "
                f"missing {missing[:4]}, unexpected {list(result.unexpected_keys)[:4]}"
            )
        adapter.set_trainable(trainable)
        return adapter


def load_core_state(folder: str | Path) -> tuple[str, MethodConfig, dict[str, Any], float]:
    """(method name, config, the saved state dict, scale) of an adapter folder, on the CPU."""
    folder = Path(folder)
    name = json.loads((folder / METHOD_FILE).read_text())["method"]
    config = read_adapter_config(folder)
    state = load_file(str(folder / WEIGHTS_FILE), device="cpu")
    return name, config, state, config.scale


def bank_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The core bank's entries of a saved adapter state, keyed as in :class:`CoreBank`."""
    prefixes = (f"base_model.{CORE_ATTR}.{ADAPTER_NAME}.", f"base_model.{CORE_ATTR}.")
    out = {}
    for key, value in state.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                out[key[len(prefix) :]] = value
                break
    return out
