"""L2D's settings (``l2d.*`` in a grid) and the names they accept.

Defaults are the release's LoRA-in-the-flow configuration (``../shared/notes/l2d.md`` §1-3):
rank 32 with scale 1 on the flow stream's q, o, gate, up and down projections, token space of
256 coordinates, noise scale sigma 64, conditioning width 256, uniform time schedule, guidance off.
The tiny base gets smaller sizes from ``harness.config.cell.default_method_overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.ground.errors import BenchError
from methods.base import MethodConfig, _help

SCHEDULES = ("uniform", "cosmap")
FLOW_TARGETS = ("q_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class L2DConfig(MethodConfig):
    dropout: float = field(default=0.0, metadata=_help("dropout on x before A (flow LoRA)"))
    sigma: float = field(default=64.0, metadata=_help("noise scale: x_t = (1-t) sigma e + t x1"))
    rep_size: int = field(default=256, metadata=_help("token representation size (flow space)"))
    embed_dim: int = field(
        default=256, metadata=_help("width of the time embedding and of the input / gate MLPs")
    )
    schedule: str = field(
        default="uniform", metadata=_help("training time schedule: uniform | cosmap")
    )
    guidance: float = field(
        default=1.0,
        metadata=_help(
            "class-guidance weight w (1 = off); else a class embedding, dropped with p=0.2 "
            "in training, and v = w v_cond + (1 - w) v_uncond when sampling"
        ),
    )

    def validate(self) -> None:
        super().validate()
        if self.schedule not in SCHEDULES:
            raise BenchError(
                f"l2d schedule {self.schedule!r} is not one of: {', '.join(SCHEDULES)}"
            )
        if not self.sigma > 0:
            raise BenchError(f"l2d sigma must be positive, got {self.sigma!r}")
        for name in ("rep_size", "embed_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise BenchError(f"l2d {name} must be a positive integer, got {value!r}")
        if self.embed_dim % 2:
            raise BenchError(f"l2d embed_dim must be even (sin and cos), got {self.embed_dim}")
        if self.target_modules is not None:
            bad = [t for t in self.target_modules if t not in FLOW_TARGETS]
            if bad:
                raise BenchError(
                    f"l2d target_modules {', '.join(bad)} are not flow projections; "
                    f"valid: {', '.join(FLOW_TARGETS)}"
                )

    @property
    def targets(self) -> tuple[str, ...]:
        return self.target_modules or FLOW_TARGETS

    @property
    def guided(self) -> bool:
        return self.guidance != 1.0
