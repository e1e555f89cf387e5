"""The trainable parts of L2D (everything the base lacks), as small modules.

- :class:`TimeEmbedding`: c(t) = MLP(sinusoidal(t)), per position; plus a class embedding when
  guidance is on (class 0 is the null class).
- :class:`LowRank`: ``s B A x`` with A ~ N(0, 1/r) and B = 0 (the release's lad_lora init).
- :class:`FlowLayer`: one decoder layer's flow LoRAs and its adaLN-Zero head (6 vectors per
  position: norm-weight offset, shift and output gate, for attention and for the MLP; last
  layer zero so every flow branch starts at exactly 0).
- :class:`TokenSpace`: x1(y) = sqrt(R) * normalize(P E[y]) over the frozen input embeddings E.
- :class:`FlowInput`: the flow stream's first state, MLP(x_t / std(x_t)).
- :class:`OutputGate`: g(c), last layer zero; the model adds (g(t) - g(0)) * h_flow.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# The release embeds t in [0, 1] like DiT's timesteps; sinusoids of 1000 t (our choice of scale:
# the note leaves it open) spread the frequencies over the unit interval.
TIME_SCALE = 1000.0
NULL_CLASS_DROPOUT = 0.2  # the release drops the class label with this probability


def _zero_last(mlp: nn.Sequential) -> nn.Sequential:
    nn.init.zeros_(mlp[-1].weight)
    nn.init.zeros_(mlp[-1].bias)
    return mlp


def _head(width: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, out))


class TimeEmbedding(nn.Module):
    def __init__(self, width: int, classes: int = 0) -> None:
        super().__init__()
        self.width = width
        half = width // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.classes = nn.Embedding(classes, width) if classes else None

    def forward(self, t: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """t (batch, n) -> c (batch, n, width); ``label`` (batch,) when guided."""
        args = TIME_SCALE * t.float()[..., None] * self.freqs
        c = self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(self.mlp[0].weight))
        if self.classes is not None and label is not None:
            c = c + self.classes(label)[:, None, :]
        return c


class LowRank(nn.Module):
    def __init__(self, fan_in: int, fan_out: int, rank: int, scale: float, dropout: float) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.randn(rank, fan_in) / rank)
        self.B = nn.Parameter(torch.zeros(fan_out, rank))
        self.scale = scale
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.linear(self.dropout(x), self.A.to(x)), self.B.to(x))


class FlowLayer(nn.Module):
    """The flow branch of one decoder layer: LoRAs on its projections + the modulation head."""

    def __init__(self, shapes: dict[str, tuple[int, int]], hidden: int, width: int, config) -> None:
        super().__init__()
        self.lora = nn.ModuleDict(
            {
                name: LowRank(fan_in, fan_out, config.rank, config.scale, config.dropout)
                for name, (fan_in, fan_out) in shapes.items()
                if name in config.targets
            }
        )
        self.modulation = _zero_last(_head(width, 6 * hidden))

    def delta(self, name: str, x: torch.Tensor) -> torch.Tensor | int:
        return self.lora[name](x) if name in self.lora else 0


class TokenSpace(nn.Module):
    def __init__(self, hidden: int, rep_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden, rep_size, bias=False)
        self.rep_size = rep_size

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Frozen input embeddings (..., hidden) -> unit-variance-per-coordinate points."""
        z = self.proj(embeddings.to(self.proj.weight))
        return math.sqrt(self.rep_size) * F.normalize(z.float(), dim=-1)


class FlowInput(nn.Module):
    def __init__(self, rep_size: int, width: int, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(rep_size, width), nn.SiLU(), nn.Linear(width, hidden))

    def forward(self, x: torch.Tensor, t: torch.Tensor, sigma: float) -> torch.Tensor:
        std = torch.sqrt((1 - t) ** 2 * sigma**2 + t**2)[..., None]
        return self.mlp((x / std).to(self.mlp[0].weight))


class OutputGate(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.mlp = _zero_last(_head(width, hidden))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.mlp(c)
