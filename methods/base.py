"""The interface every PEFT method implements, and what they share.

A method is a stateless object with a typed config; ``method.apply(dlm, config)`` wraps
``dlm.backbone`` with peft in place and returns an :class:`Adapter`, the handle the runner keeps:

    adapter = get_method("nara").apply(dlm, NaraConfig(rank=8))
    optimizer = AdamW(adapter.trainable_parameters(), ...)
    for step in range(total):
        adapter.on_step(step, total)          # NaRA's optional stage 1; a no-op elsewhere
        loss = ...dlm(input_ids, noise_level)...
    adapter.save(folder)                      # peft's folder format + bench_method.json
    adapter = load_adapter(fresh_dlm, folder) # dispatches on the recorded method name

Scaling convention (the same for every method of a comparison): ``scaling="alpha_over_r"``
multiplies the update by ``alpha / rank`` with ``alpha`` defaulting to ``rank`` (so the default
scale is 1.0, the NaRA release's value); ``scaling="one"`` fixes the scale to 1.0 and forbids
setting ``alpha``. Either way peft's ``lora_alpha`` is set so that peft's own scaling is that
value, which keeps LoRA/DoRA folders loadable by stock peft with the same behaviour.
"""

from __future__ import annotations

import dataclasses
import json
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from harness.ground.errors import BenchError
from methods.dropout import use_gap_dropout
from methods.targets import resolve_targets

# peft's PeftModel asks every model for `is_gradient_checkpointing`, which transformers 5 has
# deprecated: one FutureWarning per adapted model (per cell) that no user can act on.
warnings.filterwarnings(
    "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
)

METHOD_FILE = "bench_method.json"
FORMAT_VERSION = 1
SCALINGS = ("alpha_over_r", "one")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class MethodConfig:
    """Fields every method has. Subclasses add their own; all are validated at construction."""

    rank: int = field(default=32, metadata=_help("LoRA rank r"))
    alpha: float | None = field(
        default=None, metadata=_help("LoRA alpha; None = rank (scale 1.0); only with alpha_over_r")
    )
    scaling: str = field(
        default="alpha_over_r",
        metadata=_help("update scale: alpha_over_r | one (1.0, as released)"),
    )
    dropout: float = field(default=0.05, metadata=_help("dropout on x before A"))
    target_modules: tuple[str, ...] | None = field(
        default=None, metadata=_help("linear layer names to adapt; None = the family default")
    )

    def __post_init__(self) -> None:
        if self.target_modules is not None and not isinstance(self.target_modules, tuple):
            if isinstance(self.target_modules, str):
                object.__setattr__(self, "target_modules", tuple(self.target_modules.split(",")))
            else:
                object.__setattr__(self, "target_modules", tuple(self.target_modules))
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank <= 0:
            raise BenchError(f"rank must be a positive integer, got {self.rank!r}")
        if self.scaling not in SCALINGS:
            raise BenchError(f"scaling must be one of {', '.join(SCALINGS)}, got {self.scaling!r}")
        if self.alpha is not None:
            if self.scaling == "one":
                raise BenchError("alpha is only used with scaling='alpha_over_r'; leave it unset")
            if not self.alpha > 0:
                raise BenchError(f"alpha must be positive, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise BenchError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.target_modules is not None and (
            not self.target_modules
            or not all(isinstance(t, str) and t.strip() for t in self.target_modules)
        ):
            raise BenchError(
                "target_modules must be a non-empty list of linear layer names, or None for the "
                f"family default; got {self.target_modules!r}"
            )

    @property
    def lora_alpha(self) -> float:
        """The ``lora_alpha`` handed to peft, chosen so that peft's ``alpha / r`` is :attr:`scale`."""
        if self.scaling == "one" or self.alpha is None:
            return float(self.rank)
        return float(self.alpha)

    @property
    def scale(self) -> float:
        return self.lora_alpha / self.rank

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MethodConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise BenchError(
                f"unknown field(s) {', '.join(unknown)} for {cls.__name__}; "
                f"valid fields: {', '.join(sorted(names))}"
            )
        hints = typing.get_type_hints(cls)
        values = {}
        for key, value in data.items():
            if isinstance(value, list) and "tuple" in str(hints.get(key, "")):
                value = tuple(value)
            values[key] = value
        return cls(**values)


@dataclass(frozen=True)
class ParamCounts:
    trainable: int  # parameters with requires_grad in the whole adapted model
    total: int  # every parameter of the adapted model (base + adapter)
    adapter: int  # the method's own parameters (A, B, m, P, hypernetworks), trainable or not


def unique_parameters(module: nn.Module) -> list[nn.Parameter]:
    return list(module.parameters())  # nn.Module.parameters() already removes duplicates


class Adapter:
    """A method applied to one DiffusionLM: the handle the runner trains, saves and merges."""

    def __init__(self, method: Method, config: MethodConfig, dlm: nn.Module) -> None:
        self.method = method
        self.config = config
        self.dlm = dlm
        use_gap_dropout(dlm.backbone)  # the same dropout, its mask drawn faster on a CPU

    @property
    def peft_model(self) -> PeftModel:
        return self.dlm.backbone

    def adapter_parameters(self) -> list[nn.Parameter]:
        """The method's own parameters (LoRA factors, DoRA magnitudes, cores, hypernetworks)."""
        seen: set[int] = set()
        out = []
        for name, p in self.peft_model.named_parameters():
            if ("lora_" in name) and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimizer should get. NaRA's hypernetwork is included even during stage 1."""
        return [p for p in self.adapter_parameters() if p.requires_grad]

    def optimizer_groups(self) -> list[dict]:
        """Parameter groups for the optimizer; ``lr_scale`` multiplies the scheduled rate."""
        return [{"params": self.trainable_parameters(), "lr_scale": 1.0}]

    def parameter_counts(self) -> ParamCounts:
        params = unique_parameters(self.dlm)
        return ParamCounts(
            trainable=sum(p.numel() for p in params if p.requires_grad),
            total=sum(p.numel() for p in params),
            adapter=sum(p.numel() for p in self.adapter_parameters()),
        )

    def on_step(self, step: int, total_steps: int) -> None:
        """Called by the training loop before each optimizer step; no-op unless overridden."""

    def flow_time(self, u):
        """The flow time (batch, length) for uniform draws ``u`` on an autoregressive base; None:
        the method has no flow (everything but L2D)."""
        return None

    def save(self, folder: str | Path) -> Path:
        """The adapter's weights (:meth:`save_weights`) + bench_method.json
        (:meth:`method_record`); methods change those two, not this."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.save_weights(folder)
        (folder / METHOD_FILE).write_text(json.dumps(self.method_record(), indent=2) + "\n")
        return folder

    def save_weights(self, folder: Path) -> None:
        """peft's folder (adapter_config.json + adapter_model.safetensors)."""
        self.peft_model.save_pretrained(str(folder))

    def method_record(self) -> dict[str, Any]:
        """What :func:`read_method_record` reads back: the method, its config and scale."""
        return {
            "format": FORMAT_VERSION,
            "method": self.method.name,
            "config": self.config.to_dict(),
            "scale": self.config.scale,
        }

    def merge(self) -> None:
        """Fold the update into the base weights (reversible with :meth:`unmerge`)."""
        self.peft_model.merge_adapter()

    def unmerge(self) -> None:
        self.peft_model.unmerge_adapter()

    def set_trainable(self, trainable: bool) -> None:
        for p in self.adapter_parameters():
            p.requires_grad_(trainable)


class Method:
    """A named PEFT method: its config type and how it wraps a model."""

    name: ClassVar[str]
    description: ClassVar[str]
    config_cls: ClassVar[type[MethodConfig]] = MethodConfig
    noise_aware: ClassVar[bool] = False
    trains: ClassVar[bool] = True  # False: nothing to fine-tune (the unadapted base model)
    # The base objectives the method can adapt (harness.models.family.OBJECTIVES); a grid that
    # pairs it with another kind of base stops before running.
    objectives: ClassVar[tuple[str, ...]] = ("masked-diffusion",)
    flow_decoding: ClassVar[bool] = False  # True: eval.l2d_steps / eval.solver apply (L2D)

    def config(self, **fields: Any) -> MethodConfig:
        """A validated config from keyword fields (unknown names raise :class:`BenchError`)."""
        return self.config_cls.from_dict(fields)

    # -- building ---------------------------------------------------------------------------
    def lora_config(self, config: MethodConfig, targets: list[str], trainable: bool) -> LoraConfig:
        return LoraConfig(
            r=config.rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.dropout,
            target_modules=targets,
            bias="none",
            inference_mode=not trainable,
            **self.extra_lora_kwargs(config),
        )

    def extra_lora_kwargs(self, config: MethodConfig) -> dict[str, Any]:
        return {}

    # -- counting ---------------------------------------------------------------------------
    def count_parameters(self, arch, config: MethodConfig) -> int:
        """Trainable parameters of this method's adapter with ``config`` on an architecture,
        from its layer shapes alone (nothing is built). ``arch`` is a cost model's
        :class:`harness.costs.architecture.Architecture`: ``layer_kinds()``,
        ``target_shapes(targets, global_layer)``, ``adapter_copies``, ``layers``, ``hidden``
        and ``family``. This default is LoRA's count; methods with more parameters add theirs."""
        return self.lora_parameters(arch, config)

    def lora_parameters(self, arch, config: MethodConfig, per_output: int = 0) -> int:
        """r (in + out) per adapted linear (plus ``per_output`` x out), over every layer and
        adapter copy."""
        targets = self.cost_targets(arch, config)
        total = 0
        for n, global_layer in arch.layer_kinds():
            shapes = arch.target_shapes(targets, global_layer)
            total += n * sum(config.rank * (i + o) + per_output * o for i, o in shapes)
        return total * arch.adapter_copies

    def cost_targets(self, arch, config: MethodConfig) -> tuple[str, ...]:
        return tuple(config.target_modules or arch.default_targets)

    def _check_config(self, config: MethodConfig | None) -> MethodConfig:
        if config is None:
            return self.config_cls()
        if type(config) is not self.config_cls:
            raise BenchError(
                f"method {self.name!r} takes a {self.config_cls.__name__}, "
                f"got a {type(config).__name__}"
            )
        return config

    def _check_unadapted(self, dlm: nn.Module) -> None:
        if isinstance(dlm.backbone, PeftModel) or getattr(dlm, "_bench_adapter", None) is not None:
            raise BenchError(
                "this model already carries an adapter: apply a method to a fresh base"
            )

    def apply(self, dlm: nn.Module, config: MethodConfig | None = None) -> Adapter:
        """Wrap ``dlm.backbone`` with peft in place; returns the adapter handle."""
        config = self._check_config(config)
        self._check_unadapted(dlm)
        targets = list(resolve_targets(dlm.backbone, dlm.family, config.target_modules))
        lora_config = self.lora_config(config, targets, trainable=True)
        dlm.backbone = get_peft_model(dlm.backbone, lora_config)
        return self._attach(dlm, config, trainable=True)

    def _attach(self, dlm: nn.Module, config: MethodConfig, trainable: bool) -> Adapter:
        """Build the handle once peft has wrapped the backbone (subclasses add their cores)."""
        adapter = Adapter(self, config, dlm)
        dlm._bench_adapter = adapter
        return adapter

    # -- loading ----------------------------------------------------------------------------
    def load(self, dlm_base: nn.Module, folder: str | Path, trainable: bool = False) -> Adapter:
        """Stock peft loading; methods with a core override this."""
        folder = Path(folder)
        config = read_method_record(folder, expect=self)
        self._check_unadapted(dlm_base)
        dlm_base.backbone = PeftModel.from_pretrained(
            dlm_base.backbone, str(folder), is_trainable=trainable
        )
        return self._attach(dlm_base, config, trainable=trainable)


def read_record_file(folder: Path) -> dict[str, Any]:
    """The method record :meth:`Adapter.save` wrote into ``folder`` (method name and config)."""
    path = Path(folder) / METHOD_FILE
    if not path.is_file():
        raise BenchError(f"{folder} is not a bench adapter folder: {METHOD_FILE} is missing")
    return json.loads(path.read_text())


def read_method_record(folder: Path, expect: Method) -> MethodConfig:
    """The config recorded by :meth:`Adapter.save`, checked to be ``expect``'s (a folder of any
    method is read by :func:`methods.registry.read_adapter_config`)."""
    record = read_record_file(folder)
    if record["method"] != expect.name:
        raise BenchError(f"{folder} holds a {record['method']!r} adapter, not {expect.name!r}")
    return expect.config_cls.from_dict(record["config"])


def adapter_of(dlm: nn.Module) -> Adapter:
    """The adapter handle of a model a method was applied to."""
    adapter = getattr(dlm, "_bench_adapter", None)
    if adapter is None:
        raise BenchError("this model carries no adapter: apply a method first")
    return adapter


def module_device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")
