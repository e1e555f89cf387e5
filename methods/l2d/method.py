"""``l2d`` in the method registry: apply (wrap the causal base in :class:`L2DModel`), train
(per-position flow time from the schedule), save and load (the flow's weights only).

The base weights are frozen and never touched; the adapter's parameters are the flow stream's.
There is no merge: the flow is a second stream, not an update of the base's weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from harness.ground.errors import BenchError
from methods.base import Adapter, Method, read_method_record
from methods.l2d.config import L2DConfig
from methods.l2d.stream import L2DModel
from methods.registry import register_method

WEIGHTS_FILE = "l2d_flow.safetensors"


def _mlp(width_in: int, width: int, out: int) -> int:
    """Parameters of Linear(width_in, width) -> SiLU -> Linear(width, out), with biases."""
    return width_in * width + width + width * out + out


def schedule_time(u: torch.Tensor, schedule: str) -> torch.Tensor:
    """t = s(u): identity (uniform) or cosmap s(u) = 1 - 1 / (1 + tan(pi u / 2))."""
    if schedule == "uniform":
        return u
    return 1 - 1 / (1 + torch.tan(math.pi * u.clamp(max=1 - 1e-6) / 2))


class L2DAdapter(Adapter):
    @property
    def model(self) -> L2DModel:
        return self.dlm.backbone

    def adapter_parameters(self) -> list[nn.Parameter]:
        seen, out = set(), []
        for module in self.model.flow_modules():
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def flow_time(self, u: torch.Tensor) -> torch.Tensor:
        return schedule_time(u, self.config.schedule)

    def state_dict(self) -> dict[str, torch.Tensor]:
        names = {id(p): n for n, p in self.model.named_parameters()}
        return {names[id(p)]: p.detach().contiguous().cpu() for p in self.adapter_parameters()}

    def save_weights(self, folder: Path) -> None:
        """The flow stream's weights only (the base is untouched)."""
        save_file(self.state_dict(), str(folder / WEIGHTS_FILE))

    def merge(self) -> None:
        raise BenchError("an L2D adapter cannot be merged: its flow is a second stream")

    def unmerge(self) -> None:
        raise BenchError("an L2D adapter cannot be merged: its flow is a second stream")


class L2DMethod(Method):
    name = "l2d"
    description = "L2D: a flow stream over a frozen causal LM, one flow per next token"
    config_cls = L2DConfig
    objectives = ("autoregressive",)
    flow_decoding = True

    def count_parameters(self, arch, config: L2DConfig) -> int:
        """From L2D's modules (:mod:`methods.l2d.modules`) without building them: the flow
        stream's LoRAs and adaLN-Zero heads per decoder layer, plus the time embedding, the token
        space, the flow input and the output gate shared by all layers."""
        h, w, rep = arch.hidden, config.embed_dim, config.rep_size
        time = _mlp(w, w, w) + (2 * w if config.guided else 0)  # + the class embedding
        tokens = h * rep  # TokenSpace: a projection without bias
        inputs = _mlp(rep, w, h)  # FlowInput
        gate = _mlp(w, w, h)  # OutputGate
        lora = sum(config.rank * (i + o) for i, o in arch.target_shapes(tuple(config.targets)))
        modulation = _mlp(w, w, 6 * h)  # six vectors per position: FlowLayer.modulation
        return time + tokens + inputs + gate + arch.layers * (lora + modulation)

    def apply(self, dlm: nn.Module, config: L2DConfig | None = None) -> Adapter:
        config = self._check_config(config)
        self._check_unadapted(dlm)
        if getattr(dlm, "objective", None) != "autoregressive":
            raise BenchError(f"l2d adapts autoregressive bases; {dlm.info.name} is not one")
        device = dlm.device
        dtype = next(dlm.backbone.parameters()).dtype
        model = L2DModel(dlm.backbone, config, dlm.flow_time)
        for module in model.flow_modules():
            module.to(device=device, dtype=torch.float32 if dtype == torch.float32 else dtype)
        dlm.backbone = model
        return self._attach(dlm, config, trainable=True)

    def _attach(self, dlm: nn.Module, config, trainable: bool) -> Adapter:
        adapter = L2DAdapter(self, config, dlm)
        adapter.set_trainable(trainable)
        dlm._bench_adapter = adapter
        return adapter

    def load(self, dlm_base: nn.Module, folder: str | Path, trainable: bool = False) -> Adapter:
        folder = Path(folder)
        config = read_method_record(folder, expect=self)
        adapter = self.apply(dlm_base, config)
        stored = load_file(str(folder / WEIGHTS_FILE))
        params = dict(adapter.model.named_parameters())
        if set(stored) != set(adapter.state_dict()):
            raise BenchError(f"{folder} does not fit this base: its flow weights differ in shape")
        with torch.no_grad():
            for name, value in stored.items():
                if params[name].shape != value.shape:
                    raise BenchError(f"{folder}: flow weight {name} has shape {tuple(value.shape)}")
                params[name].copy_(value)
        adapter.set_trainable(trainable)
        return adapter


register_method(L2DMethod())
