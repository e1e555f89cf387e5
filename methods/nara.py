"""NaRA, noise-aware LoRA: ``W0 x + s B C(t) A x`` with ``C(t) = I + eta F(e(t)).view(r, r)``.

As in ``shared/notes/nara.md``: ONE hypernetwork F per adapter, shared by every adapted layer
(``core_sharing="module_type"`` gives one per module type); noise embedding ``fourier`` (fixed
buffer ``w ~ N(0, 1) * 16`` of 32 frequencies, ``e = [sin(t w), cos(t w)]``, saved with the
adapter) | ``mlp`` (Linear(1, 64) + SiLU) | ``raw``; hidden sizes (256, 512); the last layer
zero-initialised so ``C(t) = I`` and NaRA starts as plain LoRA; ``c_scale`` (eta) 0.1.

Unlike the release (one noise level per forward, hence batch size 1), the level is per example:
C has shape (batch, r, r), computed once per forward when the model's noise channel is set.

Conditioning input: ``noise`` (t, default) | ``constant`` (t replaced by ``constant_level``: a
static core produced by the hypernetwork) | ``density`` (per example, the mean over masked tokens
of the masked fraction within ``density_radius`` positions, read from the input ids by a forward
pre-hook on the backbone) | ``both`` (t and density, embedded separately and concatenated).

Stage 1 (``stage1_fraction`` p > 0): while ``step < p * total_steps`` (see
:meth:`NaraAdapter.on_step`) every C is the identity and the hypernetwork is frozen, so only A
and B train.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness.ground.errors import BenchError
from methods.base import _help, adapter_of
from methods.core import CONDITIONINGS, EMBEDDINGS, CoreBank, HyperCore, _key
from methods.core_method import (
    CoreAdapter,
    CoreConfig,
    CoreMethod,
    bank_state,
    group_of,
    load_core_state,
)
from methods.registry import register_method
from methods.static_core import StaticCoreMethod


@dataclass(frozen=True)
class NaraConfig(CoreConfig):
    embedding: str = field(
        default="fourier", metadata=_help("noise embedding: fourier | mlp | raw")
    )
    fourier_features: int = field(default=32, metadata=_help("Fourier frequencies (e has 2x)"))
    fourier_std: float = field(default=16.0, metadata=_help("std of the Fourier frequencies"))
    mlp_embedding_dim: int = field(default=64, metadata=_help("width of the mlp embedding"))
    hidden_sizes: tuple[int, ...] = field(
        default=(256, 512), metadata=_help("hypernetwork hidden widths (SiLU between)")
    )
    conditioning: str = field(
        default="noise", metadata=_help("hypernetwork input: noise | constant | density | both")
    )
    constant_level: float = field(
        default=0.5, metadata=_help("the level fed with conditioning=constant")
    )
    density_radius: int = field(default=5, metadata=_help("window radius of the mask density"))
    stage1_fraction: float = field(
        default=0.0, metadata=_help("first fraction of steps with C = I (hypernetwork frozen)")
    )

    def __post_init__(self) -> None:
        if not isinstance(self.hidden_sizes, tuple):
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        super().__post_init__()

    def validate(self) -> None:
        super().validate()
        if self.embedding not in EMBEDDINGS:
            raise BenchError(
                f"embedding must be one of {', '.join(EMBEDDINGS)}, got {self.embedding!r}"
            )
        if self.conditioning not in CONDITIONINGS:
            raise BenchError(
                f"conditioning must be one of {', '.join(CONDITIONINGS)}, got {self.conditioning!r}"
            )
        for name in ("fourier_features", "mlp_embedding_dim", "density_radius"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise BenchError(f"{name} must be a positive integer, got {value!r}")
        if not self.fourier_std > 0:
            raise BenchError(f"fourier_std must be positive, got {self.fourier_std!r}")
        if not all(
            isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in self.hidden_sizes
        ):
            raise BenchError(
                f"hidden_sizes must be positive integers (e.g. 256,512), got {self.hidden_sizes!r}"
            )
        if not 0.0 <= self.constant_level <= 1.0:
            raise BenchError(f"constant_level must be in [0, 1], got {self.constant_level!r}")
        if not 0.0 <= self.stage1_fraction < 1.0:
            raise BenchError(f"stage1_fraction must be in [0, 1), got {self.stage1_fraction!r}")

    @property
    def n_inputs(self) -> int:
        return 2 if self.conditioning == "both" else 1


def make_hypernetwork(config: NaraConfig) -> HyperCore:
    return HyperCore(
        rank=config.rank,
        c_scale=config.c_scale,
        n_inputs=config.n_inputs,
        embedding=config.embedding,
        fourier_features=config.fourier_features,
        fourier_std=config.fourier_std,
        mlp_dim=config.mlp_embedding_dim,
        hidden_sizes=config.hidden_sizes,
    )


def make_nara_bank(config: NaraConfig, groups: list[str], mask_id: int | None = None) -> CoreBank:
    return CoreBank(
        {g: make_hypernetwork(config) for g in groups},
        conditioning=config.conditioning,
        constant_level=config.constant_level,
        density_radius=config.density_radius,
        mask_id=mask_id,
    )


def hypernetwork_parameter_count(config: NaraConfig) -> int:
    return sum(p.numel() for p in make_hypernetwork(config).parameters())


class NaraAdapter(CoreAdapter):
    def on_step(self, step: int, total_steps: int) -> None:
        """Stage 1: C = I and the hypernetwork frozen while ``step < fraction * total_steps``."""
        stage1 = step < self.config.stage1_fraction * total_steps
        if stage1 == self.bank.force_identity:
            return
        self.bank.force_identity = stage1
        if stage1:
            self._stage1_frozen = [p for p in self.bank.parameters() if p.requires_grad]
            for p in self._stage1_frozen:
                p.requires_grad_(False)
        else:
            for p in self._stage1_frozen:
                p.requires_grad_(True)
            self._stage1_frozen = []

    def merge(self) -> None:
        raise BenchError("NaRA's update depends on the noise level: use merge_at(dlm, t)")

    def merge_at(self, t: float) -> None:
        """Fold ``s B C(t)^T A`` into every adapted weight (for analysis); undo with unmerge()."""
        level = torch.tensor([float(t)], device=self.bank_device)
        with torch.no_grad():
            self.bank.update(level)
        self.peft_model.merge_adapter()


class NaraMethod(CoreMethod):
    name = "nara"
    description = "NaRA: s B C(t) A x, C(t) = I + eta F(e(t)) from one shared hypernetwork"
    config_cls = NaraConfig
    noise_aware = True
    adapter_cls = NaraAdapter

    def make_bank(self, config, groups, mask_id):
        return make_nara_bank(config, groups, mask_id)

    def core_parameters(self, config) -> int:
        return hypernetwork_parameter_count(config)


def merge_at(dlm, t: float) -> None:
    """Merge a NaRA (or binned LoRA) adapter into the base weights at noise level ``t``
    (``adapter.unmerge()``)."""
    adapter = adapter_of(dlm)
    if not callable(getattr(adapter, "merge_at", None)):  # NaRA, binned LoRA
        raise BenchError(
            f"merge_at needs a noise-aware adapter, this model has {adapter.method.name!r}"
        )
    adapter.merge_at(t)


# --------------------------------------------------------------------------------------------
# Analysis from a saved adapter folder alone (no base model)
# --------------------------------------------------------------------------------------------
def offline_bank(folder: str | Path) -> tuple[str, object, CoreBank | None, dict, float]:
    """(method, config, core bank or None for LoRA/DoRA, saved state, scale) of a folder."""
    name, config, state, scale = load_core_state(folder)
    core_state = bank_state(state)
    if name not in ("nara", "static_core"):
        return name, config, None, state, scale
    groups = sorted({key.split(".")[1] for key in core_state if key.startswith("cores.")})
    if name == "nara":
        bank = make_nara_bank(config, groups)
    else:
        bank = StaticCoreMethod().make_bank(config, groups, None)
    bank.load_state_dict(core_state, strict=True)
    bank.eval()
    return name, config, bank, state, scale


def _cores(bank: CoreBank | None, rank: int, ts: np.ndarray) -> dict[str, torch.Tensor]:
    """C(t) per group, (T, r, r) float64, from the bank (identity for plain LoRA)."""
    level = torch.as_tensor(np.asarray(ts, dtype=np.float32)).reshape(-1)
    if bank is None:
        return {"all": torch.eye(rank, dtype=torch.float64).expand(len(level), rank, rank)}
    with torch.no_grad():
        cores = bank.compute(level)
    return {g: c.double().expand(len(level), rank, rank) for g, c in cores.items()}


def core_trajectory(
    adapter_dir: str | Path, ts: np.ndarray, group: str | None = None
) -> np.ndarray:
    """C(t) for each t, shape (T, r, r), from the saved adapter alone.

    Works for NaRA and static-core folders (static: the same C for every t). With more than one
    core (``core_sharing`` other than global) name the ``group`` (a module type or layer path).
    With ``conditioning="density"`` or ``"both"`` the density input is taken equal to t (its
    expected value under uniform masking).
    """
    name, config, bank, _, _ = offline_bank(adapter_dir)
    if bank is None:
        raise BenchError(f"{adapter_dir} holds a {name!r} adapter: it has no core matrix")
    cores = _cores(bank, config.rank, ts)
    if group is None:
        if len(cores) != 1:
            raise BenchError(f"this adapter has several cores; pass group= one of {sorted(cores)}")
        return next(iter(cores.values())).numpy()
    key = _key(group)
    if key not in cores:
        raise BenchError(f"no core {group!r} in this adapter; valid: {sorted(cores)}")
    return cores[key].numpy()


def update_norms(adapter_dir: str | Path, ts: np.ndarray) -> dict[str, np.ndarray]:
    """||s B C(t)^T A||_F for each t, averaged over the layers of each type (e.g. "q_proj").

    Reads only the adapter folder. Plain LoRA folders work too (C = I, constant in t); for DoRA
    this is the norm of the low-rank part before the magnitude rescaling.
    """
    name, config, bank, state, scale = offline_bank(adapter_dir)
    cores = _cores(bank, config.rank, ts)
    sharing = getattr(config, "core_sharing", "global")
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = defaultdict(int)
    for key, weight_a in state.items():
        if not key.endswith(".lora_A.weight"):
            continue
        layer = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        weight_b = state[key.replace(".lora_A.weight", ".lora_B.weight")].double()
        gram_a = weight_a.double() @ weight_a.double().T  # (r, r)
        gram_b = weight_b.T @ weight_b  # (r, r)
        core = cores["all"] if bank is None else cores[_key(group_of(layer, sharing))]
        # ||B M A||_F^2 = tr(M^T G_B M G_A) with M = C^T
        m = core.transpose(-1, -2)
        sq = torch.einsum("tji,jk,tkl,li->t", m, gram_b, m, gram_a)
        norm = scale * sq.clamp(min=0).sqrt()
        layer_type = layer.rsplit(".", 1)[-1]
        sums[layer_type] = sums.get(layer_type, 0) + norm
        counts[layer_type] += 1
    if not sums:
        raise BenchError(f"{adapter_dir} has no LoRA factors")
    return {t: (sums[t] / counts[t]).numpy() for t in sorted(sums)}


def relative_core_effect(adapter_dir: str | Path, ts: np.ndarray) -> np.ndarray | None:
    """||B (C(t) - I)^T A||_F / ||B A||_F over all adapted layers together, for each t.

    How much the core changes the low-rank update: 0 when C = I (at initialisation, or a core
    that never moved), so a static-core or NaRA adapter is then plain LoRA. Static cores give the
    same value for every t; an adapter with no update yet (B = 0, at initialisation) gives 0.
    None for adapters without a core (LoRA, DoRA).
    """
    name, config, bank, state, _ = offline_bank(adapter_dir)
    if bank is None:
        return None
    cores = _cores(bank, config.rank, ts)
    sharing = getattr(config, "core_sharing", "global")
    eye = torch.eye(config.rank, dtype=torch.float64)
    delta_sq = torch.zeros(len(np.asarray(ts).reshape(-1)), dtype=torch.float64)
    plain_sq = torch.zeros((), dtype=torch.float64)
    for key, weight_a in state.items():
        if not key.endswith(".lora_A.weight"):
            continue
        layer = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        weight_b = state[key.replace(".lora_A.weight", ".lora_B.weight")].double()
        gram_a = weight_a.double() @ weight_a.double().T
        gram_b = weight_b.T @ weight_b
        m = (cores[_key(group_of(layer, sharing))] - eye).transpose(-1, -2)
        delta_sq += torch.einsum("tji,jk,tkl,li->t", m, gram_b, m, gram_a)
        plain_sq += torch.trace(gram_b @ gram_a)
    if plain_sq <= 0:
        return np.zeros(len(delta_sq))
    return (delta_sq.clamp(min=0) / plain_sq).sqrt().numpy()


register_method(NaraMethod())
