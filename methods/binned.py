"""Binned LoRA: K separate LoRA adapters, one per noise bin (the NaRA release's discrete baseline).

Example i uses adapter ``min(K-1, floor(t_i K))`` (bin k covers ``[k/K, (k+1)/K)``, the last
one closed at 1) in training, sampling and likelihood scoring, per example within one batch,
routed through the model's noise channel (:mod:`methods.binned_layer`). It answers whether a
smooth hypernetwork over t (NaRA) is needed, or K independent experts do as well. The release
switches with ``ceil(lambda K)`` counted from 1, which differs from ours only exactly on an edge.

Every bin adapter is an ordinary peft LoRA with LoRA's init (A Kaiming-uniform, B zero), scale,
dropout and targets, so K = 1 is plain LoRA and the parameters are K times LoRA's. With
``shared_init`` every bin starts from bin 0's A (B is zero anyway), so bins differ only by the
examples they were trained on.

Folder: peft's multi-adapter layout (``save_pretrained`` of a model holding several adapters):
one sub-folder per bin (``bin0/adapter_config.json`` + ``adapter_model.safetensors``, ...) plus
``bench_method.json`` at the top. Every ``adapter_config.json`` (a top-level one too) carries
the bench-only ``peft_type`` of :mod:`methods.peft_guard`, so stock peft refuses the folder and
each bin instead of loading one bin as the whole model; ``bench export --level t`` writes the
bin that t falls in as a plain peft LoRA folder.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file
from torch import nn

from harness.ground.errors import BenchError
from methods.base import (
    Adapter,
    Method,
    MethodConfig,
    _help,
    read_method_record,
    read_record_file,
)
from methods.binned_layer import BinnedLoraLinear, BinRouter, bin_edges, bin_name, bin_of
from methods.peft_guard import CONFIG_FILE, mark_bench_only, read_lora_config
from methods.registry import register_method
from methods.targets import resolve_targets

WEIGHTS_FILE = "adapter_model.safetensors"
MAX_BINS = 64


@dataclass(frozen=True)
class BinnedLoraConfig(MethodConfig):
    bins: int = field(
        default=4,
        metadata=_help(f"K: LoRA adapters, one per noise bin [k/K, (k+1)/K), 1..{MAX_BINS}"),
    )
    shared_init: bool = field(
        default=False, metadata=_help("every bin starts from bin 0's A (else its own LoRA draw)")
    )

    def validate(self) -> None:
        super().validate()
        if (
            not isinstance(self.bins, int)
            or isinstance(self.bins, bool)
            or not 1 <= self.bins <= MAX_BINS
        ):
            raise BenchError(f"bins must be an integer from 1 to {MAX_BINS}, got {self.bins!r}")
        if not isinstance(self.shared_init, bool):
            raise BenchError(f"shared_init must be true or false, got {self.shared_init!r}")


class BinnedAdapter(Adapter):
    """K bin adapters routed by the noise level; the handle the runner trains and saves."""

    def __init__(self, method: Method, config: MethodConfig, dlm: nn.Module, router: BinRouter):
        super().__init__(method, config, dlm)
        self.router = router

    @property
    def bin_names(self) -> list[str]:
        return list(self.router.names)

    def bin_parameters(self, k: int) -> list[nn.Parameter]:
        """A and B of bin ``k`` in every adapted layer."""
        suffix = f".{bin_name(k)}.weight"
        return [p for n, p in self.peft_model.named_parameters() if n.endswith(suffix)]

    def save_weights(self, folder: Path) -> None:
        """One peft sub-folder per bin, bench-only markers (bench_method.json: the bins too)."""
        # peft writes every adapter not named "default" into a sub-folder of its name
        super().save_weights(folder)
        for name in self.bin_names:
            mark_bench_only(folder / name, self.method.name)
        shutil.copy2(folder / self.bin_names[0] / CONFIG_FILE, folder / CONFIG_FILE)

    def method_record(self) -> dict:
        edges = bin_edges(self.config.bins)
        bins = {name: list(edge) for name, edge in zip(self.bin_names, edges, strict=True)}
        return {**super().method_record(), "bins": bins}

    def merge(self) -> None:
        raise BenchError("binned LoRA uses another adapter per noise bin: use merge_at(dlm, t)")

    def merge_at(self, t: float) -> None:
        """Fold the adapter of the bin ``t`` falls in into the base weights (undo: unmerge())."""
        k = int(bin_of(torch.tensor([float(t)]), self.config.bins)[0])
        self.peft_model.base_model.merge_adapter(adapter_names=[bin_name(k)])

    def detach_channel(self) -> None:
        self.dlm.channel.unsubscribe(self.router.on_level)


class BinnedLoraMethod(Method):
    name = "binned_lora"
    description = "binned LoRA: K LoRA adapters, example i uses bin min(K-1, floor(t_i K))"
    config_cls = BinnedLoraConfig
    noise_aware = True

    def count_parameters(self, arch, config: MethodConfig) -> int:
        """One LoRA per noise bin."""
        return config.bins * self.lora_parameters(arch, config)

    def lora_config(self, config: MethodConfig, targets: list[str], trainable: bool) -> LoraConfig:
        lora_config = super().lora_config(config, targets, trainable)
        lora_config._register_custom_module({nn.Linear: BinnedLoraLinear})
        return lora_config

    def _build(self, backbone: nn.Module, configs: list[LoraConfig]) -> PeftModel:
        """peft's model holding one adapter per bin (bin 0 first, so K = 1 draws as LoRA)."""
        peft_model = get_peft_model(backbone, configs[0], adapter_name=bin_name(0))
        for k, lora_config in enumerate(configs[1:], start=1):
            peft_model.add_adapter(bin_name(k), lora_config)
        return peft_model

    def apply(self, dlm: nn.Module, config: MethodConfig | None = None) -> Adapter:
        config = self._check_config(config)
        self._check_unadapted(dlm)
        targets = list(resolve_targets(dlm.backbone, dlm.family, config.target_modules))
        configs = [self.lora_config(config, targets, trainable=True) for _ in range(config.bins)]
        dlm.backbone = self._build(dlm.backbone, configs)
        adapter = self._attach(dlm, config, trainable=True)
        if config.shared_init:
            with torch.no_grad():
                for layer in _layers(dlm.backbone):
                    for name in adapter.bin_names[1:]:
                        layer.lora_A[name].weight.copy_(layer.lora_A[bin_name(0)].weight)
        return adapter

    def _attach(self, dlm: nn.Module, config: MethodConfig, trainable: bool) -> Adapter:
        peft_model = dlm.backbone
        router = BinRouter(config.bins)
        peft_model.base_model.set_adapter(router.names, inference_mode=not trainable)
        layers = _layers(peft_model)
        if not layers:
            raise BenchError("no layer was adapted: check target_modules")
        for layer in layers:
            layer.bind_router(router)
        adapter = BinnedAdapter(self, config, dlm, router)
        dlm.channel.subscribe(router.on_level)
        dlm._bench_adapter = adapter
        return adapter

    def load(self, dlm_base: nn.Module, folder: str | Path, trainable: bool = False) -> Adapter:
        folder = Path(folder)
        config = read_method_record(folder, expect=self)
        self._check_unadapted(dlm_base)
        names = [bin_name(k) for k in range(config.bins)]
        absent = [n for n in names if not (folder / n / WEIGHTS_FILE).is_file()]
        if absent:
            raise BenchError(
                f"{folder} is a binned_lora adapter with {config.bins} bins but lacks "
                f"{', '.join(f'{n}/{WEIGHTS_FILE}' for n in absent)}"
            )
        configs = []
        for name in names:
            lora_config = read_lora_config(folder / name)
            lora_config.inference_mode = not trainable
            lora_config._register_custom_module({nn.Linear: BinnedLoraLinear})
            configs.append(lora_config)
        dlm_base.backbone = self._build(dlm_base.backbone, configs)
        adapter = self._attach(dlm_base, config, trainable=trainable)
        device = str(next(dlm_base.backbone.parameters()).device)
        for name in names:
            state = load_file(str(folder / name / WEIGHTS_FILE), device=device)
            result = set_peft_model_state_dict(dlm_base.backbone, state, adapter_name=name)
            missing = [k for k in result.missing_keys if f".{name}." in k]
            if result.unexpected_keys or missing:
                raise BenchError(
                    f"{folder / name} does not match a LoRA of this model: missing "
                    f"{missing[:4]}, unexpected {list(result.unexpected_keys)[:4]}"
                )
        adapter.set_trainable(trainable)
        return adapter


def _layers(peft_model: PeftModel) -> list[BinnedLoraLinear]:
    return [m for m in peft_model.base_model.model.modules() if isinstance(m, BinnedLoraLinear)]


# --------------------------------------------------------------------------------------------
# From a saved folder alone (export, lm-eval's fit check)
# --------------------------------------------------------------------------------------------
def bin_folder(folder: str | Path, level: float) -> tuple[Path, int, int]:
    """(sub-folder of the bin ``level`` falls in, that bin, K) of a saved binned_lora folder."""
    record = read_record_file(Path(folder))
    config = (
        BinnedLoraConfig.from_dict(record["config"]) if record["method"] == "binned_lora" else None
    )
    if not isinstance(config, BinnedLoraConfig):
        raise BenchError(f"{folder} is not a binned_lora adapter folder")
    k = int(bin_of(torch.tensor([float(level)]), config.bins)[0])
    return Path(folder) / bin_name(k), k, config.bins


def weight_files(folder: str | Path) -> list[Path]:
    """Every adapter_model.safetensors of an adapter folder: its own, or one per bin."""
    folder = Path(folder)
    if (folder / WEIGHTS_FILE).is_file():
        return [folder / WEIGHTS_FILE]
    found = [
        p for p in folder.glob(f"bin*/{WEIGHTS_FILE}") if re.fullmatch(r"bin\d+", p.parent.name)
    ]
    return sorted(found, key=lambda p: int(p.parent.name[3:]))


register_method(BinnedLoraMethod())
