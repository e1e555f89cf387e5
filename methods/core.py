"""LoRA with a core matrix between A and B, on peft's own LoRA layer (static-core LoRA and NaRA).

Orientation, kept everywhere (layers, merge, analysis):

    h = dropout(x) A^T          (..., r)
    h = h C                     per example: C (batch, r, r), einsum 'bnr,brs->bns' (a bmm)
    y = W0 x + scaling * h B^T

so the weight update is ``scaling * B C^T A`` (out x in), which is what merging adds.

:class:`CoreLoraLinear` subclasses peft's ``lora.Linear`` and is registered through
``LoraConfig._register_custom_module``: A, B, dropout, scaling, merging and saving are peft's.
The cores live in one :class:`CoreBank` per adapter, attached to peft's ``LoraModel`` as the
``lora_core`` ModuleDict (the place VeRA keeps its shared matrices), so ``save_pretrained``
writes them (the Fourier buffer included) into adapter_model.safetensors with the LoRA factors.

The bank subscribes to the model's :class:`harness.ground.noise_level.NoiseChannel` and computes every C once
per forward, before the first layer runs; layers only read it. The value stays set after the
forward, so layers recomputed under gradient checkpointing read the same C (use transformers'
default ``use_reentrant=False``; reentrant checkpointing cannot backpropagate one shared
hypernetwork graph from several checkpointed segments).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from peft.tuners.lora.layer import VARIANT_KWARG_KEYS
from peft.tuners.lora.layer import Linear as PeftLoraLinear
from peft.utils.other import transpose
from torch import nn

CONDITIONINGS = ("noise", "constant", "density", "both")
EMBEDDINGS = ("fourier", "mlp", "raw")


# --------------------------------------------------------------------------------------------
# Noise embeddings and cores
# --------------------------------------------------------------------------------------------
def peft_forward_applies(layer: PeftLoraLinear, kwargs: dict) -> bool:
    """Whether peft's own LoRA forward is the right one: adapters disabled or merged, or a
    mixed-adapter batch (``adapter_names``), none of which a custom layer handles."""
    return bool(layer.disable_adapters or layer.merged or kwargs.get("adapter_names") is not None)


def base_layer_output(layer: PeftLoraLinear, x: torch.Tensor, *args: Any, **kwargs: Any):
    """The frozen layer's output, as peft's forward computes it before adding its adapters
    (peft's variant keyword arguments never reach the base layer)."""
    layer._check_forward_args(x, *args, **kwargs)
    for key in VARIANT_KWARG_KEYS:
        kwargs.pop(key, None)
    return layer.base_layer(x, *args, **kwargs)


class FourierEmbedding(nn.Module):
    """e(t) = [sin(t w), cos(t w)], w ~ N(0, 1) * std fixed at creation (no 2 pi), saved."""

    def __init__(self, features: int = 32, std: float = 16.0) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.randn(features) * std, persistent=True)
        self.out_dim = 2 * features

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # (batch,) -> (batch, 2F)
        angles = t.float()[:, None] * self.freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class MlpEmbedding(nn.Module):
    """A learned Linear(1, dim) + SiLU."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.proj = nn.Linear(1, dim)
        self.out_dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return F.silu(self.proj(t[:, None].to(self.proj.weight.dtype)))


class RawEmbedding(nn.Module):
    out_dim = 1

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return t[:, None].float()


def make_embedding(kind: str, fourier_features: int, fourier_std: float, mlp_dim: int) -> nn.Module:
    if kind == "fourier":
        return FourierEmbedding(fourier_features, fourier_std)
    if kind == "mlp":
        return MlpEmbedding(mlp_dim)
    return RawEmbedding()


class StaticCore(nn.Module):
    """C = I + eta * P with P (r x r) zero-initialised: static-core LoRA."""

    def __init__(self, rank: int, c_scale: float) -> None:
        super().__init__()
        self.rank = rank
        self.c_scale = c_scale
        self.P = nn.Parameter(torch.zeros(rank, rank))

    def forward(self, inputs: torch.Tensor | None = None) -> torch.Tensor:  # -> (1, r, r)
        eye = torch.eye(self.rank, device=self.P.device, dtype=self.P.dtype)
        return (eye + self.c_scale * self.P)[None]


class HyperCore(nn.Module):
    """C(t) = I + eta * F(e(t)).view(r, r): NaRA's hypernetwork, one C per example.

    ``inputs`` has shape (batch, n_inputs): one column per conditioning signal (noise level,
    mask density), each embedded on its own and concatenated before the MLP.
    """

    def __init__(
        self,
        rank: int,
        c_scale: float,
        n_inputs: int = 1,
        embedding: str = "fourier",
        fourier_features: int = 32,
        fourier_std: float = 16.0,
        mlp_dim: int = 64,
        hidden_sizes: Sequence[int] = (256, 512),
    ) -> None:
        super().__init__()
        self.rank = rank
        self.c_scale = c_scale
        self.embeddings = nn.ModuleList(
            make_embedding(embedding, fourier_features, fourier_std, mlp_dim)
            for _ in range(n_inputs)
        )
        layers: list[nn.Module] = []
        width = sum(e.out_dim for e in self.embeddings)
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        last = nn.Linear(width, rank * rank)
        nn.init.zeros_(last.weight)  # C(t) = I at the start: NaRA starts as plain LoRA
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # (batch, n_inputs) -> (batch, r, r)
        e = torch.cat([emb(inputs[:, i]) for i, emb in enumerate(self.embeddings)], dim=-1)
        f = self.net(e.to(self.net[0].weight.dtype)).view(-1, self.rank, self.rank)
        eye = torch.eye(self.rank, device=f.device, dtype=f.dtype)
        return eye + self.c_scale * f


def mask_density(input_ids: torch.Tensor, mask_id: int, radius: int = 5) -> torch.Tensor:
    """Per example: mean over masked tokens of the masked fraction within ``radius`` of them.

    Positions outside the sequence are not counted. An example without masked tokens gets 0.
    """
    mask = (input_ids == mask_id).float()[:, None, :]  # (batch, 1, length)
    kernel = torch.ones(1, 1, 2 * radius + 1, device=mask.device)
    masked_near = F.conv1d(mask, kernel, padding=radius)
    window = F.conv1d(torch.ones_like(mask), kernel, padding=radius)
    local = (masked_near / window)[:, 0]
    mask = mask[:, 0]
    return (local * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)


# --------------------------------------------------------------------------------------------
# The bank: every core of one adapter, computed once per forward
# --------------------------------------------------------------------------------------------
class CoreBank(nn.Module):
    """The cores of one adapter, keyed by group ("all", a module type, or a layer path).

    ``update(level, density)`` computes every group's C for the forward about to run; layers
    then call ``core(group)``. A static bank (no hypernetwork) computes ``I + eta P`` from the
    current P at every ``core`` call instead, so nothing can go stale when P is changed in place. ``force_identity`` (NaRA stage 1) makes every C the identity
    without touching the hypernetwork, so it gets no gradient.
    """

    def __init__(
        self,
        cores: dict[str, nn.Module],
        conditioning: str = "noise",
        constant_level: float = 0.5,
        density_radius: int = 5,
        mask_id: int | None = None,
    ) -> None:
        super().__init__()
        self.cores = nn.ModuleDict({_key(g): c for g, c in cores.items()})
        self.conditioning = conditioning
        self.constant_level = constant_level
        self.density_radius = density_radius
        self.mask_id = mask_id
        self.force_identity = False
        self._current: dict[str, torch.Tensor | None] = {}
        self._level: torch.Tensor | None = None

    @property
    def noise_aware(self) -> bool:
        return any(isinstance(c, HyperCore) for c in self.cores.values())

    @property
    def needs_input_ids(self) -> bool:
        return self.noise_aware and self.conditioning in ("density", "both")

    # called by the noise channel, inside the caller's forward
    def on_level(self, level: torch.Tensor) -> None:
        self._level = level
        if not self.noise_aware:
            return  # a static core is read from P at every call (see core())
        if self.needs_input_ids:
            self._current = {}  # the backbone pre-hook computes C once the ids are known
        else:
            self.update(level)

    # called as a forward pre-hook of the backbone (density conditioning only)
    def on_backbone_call(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        if not self.needs_input_ids:
            return
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if input_ids is None or self.mask_id is None:
            raise RuntimeError("NaRA density conditioning needs input_ids and the mask token id")
        density = mask_density(input_ids, self.mask_id, self.density_radius)
        level = self._level
        if level is None:
            level = torch.zeros(input_ids.shape[0], device=input_ids.device)
        self.update(level, density)

    def conditioning_inputs(
        self, level: torch.Tensor, density: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The hypernetwork's input columns, shape (batch, n_inputs)."""
        level = level.float()
        if self.conditioning == "noise":
            cols = [level]
        elif self.conditioning == "constant":
            cols = [torch.full_like(level, self.constant_level)]
        else:
            if density is None:
                density = level  # analysis without ids: expected density under uniform masking
            density = density.to(level.device, torch.float32)
            cols = [density] if self.conditioning == "density" else [level, density]
        return torch.stack(cols, dim=-1)

    def compute(
        self, level: torch.Tensor | None, density: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor | None]:
        if self.force_identity:
            return dict.fromkeys(self.cores)
        inputs = None
        if self.noise_aware:
            if level is None:
                raise RuntimeError(
                    "NaRA needs the noise level: call the model through DiffusionLM.forward"
                )
            inputs = self.conditioning_inputs(level, density)
        return {g: core(inputs) for g, core in self.cores.items()}

    def update(self, level: torch.Tensor | None, density: torch.Tensor | None = None) -> None:
        self._current = self.compute(level, density)

    def core(self, group: str) -> torch.Tensor | None:
        """C for ``group`` in the current forward: (batch or 1, r, r), or None for the identity."""
        key = _key(group)
        if not self.noise_aware:
            # Never cached: P changes in place (optimizer steps, the best-checkpoint restore),
            # and a C kept from an earlier forward would fold a stale P into a merge.
            return None if self.force_identity else self.cores[key](None)
        if key not in self._current:
            raise RuntimeError(
                "NaRA needs the noise level: call the model through DiffusionLM.forward"
            )
        return self._current[key]


def _key(group: str) -> str:
    return group.replace(".", "__")


def apply_core(h: torch.Tensor, core: torch.Tensor | None) -> torch.Tensor:
    """h (batch, ..., r) times C (batch or 1, r, r) -> (batch, ..., r)."""
    if core is None:
        return h
    core = core.to(h.dtype)
    if core.shape[0] == 1:
        return h @ core[0]
    batch = h.shape[0]
    if core.shape[0] != batch:
        raise RuntimeError(
            f"the noise level has batch {core.shape[0]} but the layer input has batch {batch}: "
            "pass one level per example (or a single level for the whole batch)"
        )
    return torch.bmm(h.reshape(batch, -1, h.shape[-1]), core).reshape(h.shape)


# --------------------------------------------------------------------------------------------
# The LoRA layer
# --------------------------------------------------------------------------------------------
class CoreLoraLinear(PeftLoraLinear):
    """peft's LoRA Linear with ``h -> h C`` between A and B for adapters bound to a core bank.

    An adapter with no bank bound behaves exactly like peft's LoRA.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # plain dicts: the bank is shared by every layer and registered once, on the LoraModel
        self._bench_cores: dict[str, tuple[CoreBank, str]] = {}
        self._merged_cores: dict[str, torch.Tensor] = {}

    def bind_core(self, adapter_name: str, bank: CoreBank, group: str) -> None:
        self._bench_cores[adapter_name] = (bank, group)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if peft_forward_applies(self, kwargs) or not any(
            a in self._bench_cores for a in self.active_adapters
        ):
            return super().forward(x, *args, **kwargs)
        result = base_layer_output(self, x, *args, **kwargs)
        result_dtype = result.dtype
        for active in self.active_adapters:
            if active not in self.lora_A:
                continue
            lora_a = self.lora_A[active]
            lora_b = self.lora_B[active]
            dropout = self.lora_dropout[active]
            scaling = self.scaling[active]
            xa = self._cast_input_dtype(x, lora_a.weight.dtype)
            h = lora_a(dropout(xa))
            bound = self._bench_cores.get(active)
            if bound is not None:
                bank, group = bound
                h = apply_core(h, bank.core(group))
            result = result + lora_b(h) * scaling
        return result.to(result_dtype)

    # merging: peft's merge/unmerge call get_delta_weight; the core used is pinned at merge time
    def _core_for_merge(self, adapter: str) -> torch.Tensor | None:
        if adapter in self._merged_cores:
            return self._merged_cores[adapter]
        bank, group = self._bench_cores[adapter]
        core = bank.core(group)
        if core is not None and core.shape[0] != 1:
            raise RuntimeError(
                "a noise-aware core merges at one noise level: use methods.nara.merge_at(dlm, t)"
            )
        return None if core is None else core[0].detach()

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        names = adapter_names if adapter_names is not None else list(self.active_adapters)
        for name in names:
            if name in self._bench_cores and name not in self.merged_adapters:
                core = self._core_for_merge(name)
                if core is None:
                    rank = self.r[name]
                    core = torch.eye(rank, device=self.lora_A[name].weight.device)
                self._merged_cores[name] = core
        super().merge(safe_merge=safe_merge, adapter_names=adapter_names)

    def unmerge(self) -> None:
        super().unmerge()
        self._merged_cores.clear()

    def get_delta_weight(self, adapter: str) -> torch.Tensor:
        if adapter not in self._bench_cores:
            return super().get_delta_weight(adapter)
        weight_a = self.lora_A[adapter].weight
        weight_b = self.lora_B[adapter].weight
        dtype = weight_b.dtype
        core = self._core_for_merge(adapter)
        if core is None:
            delta = weight_b.float() @ weight_a.float()
        else:
            delta = weight_b.float() @ core.float().T @ weight_a.float()
        delta = transpose(delta, self.fan_in_fan_out) * self.scaling[adapter]
        return delta.to(dtype)
