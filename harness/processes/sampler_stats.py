"""What one or more sampler calls actually did: forwards, rows per forward, decoded tokens."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SamplingStats:
    """Accumulates over calls (an evaluation passes one object to every batch).

    ``row_forwards`` counts every row of every forward: the denominator of the time per sampling
    step, so steps that ran no forward and rows already finished never count. ``tokens`` counts
    positions the sampler decoded (not the EOS padding written after a row stopped).
    """

    forwards: int = 0
    row_forwards: int = 0
    tokens: int = 0
    refreshes: int = 0  # cache recordings beyond each block's first step
    time_s: float = 0.0
    cache_used: str = "none"
    flow_evals: int = 0  # L2D: flow-stream evaluations, summed over rows (final forward included)
    # a sampler with settings of its own (DiffusionGemma's generate): the values it ran with
    # and where each came from, {"values": {...}, "sources": {...}}
    generation: dict | None = None
    # what a reader must know about the settings, e.g. that a parallel rule ignored ``steps``
    notes: tuple[str, ...] = ()

    def add_forward(self, rows: int) -> None:
        self.forwards += 1
        self.row_forwards += rows

    @property
    def forwards_per_token(self) -> float | None:
        return self.row_forwards / self.tokens if self.tokens else None

    @property
    def flow_evals_per_token(self) -> float | None:
        return self.flow_evals / self.tokens if self.tokens else None

    @property
    def tokens_per_s(self) -> float | None:
        return self.tokens / self.time_s if self.time_s > 0 else None

    @property
    def time_per_step_s(self) -> float | None:
        return self.time_s / self.row_forwards if self.row_forwards else None

    def to_dict(self) -> dict:
        return {
            "forwards": self.forwards,
            "row_forwards": self.row_forwards,
            "tokens": self.tokens,
            "refreshes": self.refreshes,
            "time_s": self.time_s,
            "cache_used": self.cache_used,
            "flow_evals": self.flow_evals,
            "notes": list(self.notes),
            "flow_evals_per_token": self.flow_evals_per_token,
            "forwards_per_token": self.forwards_per_token,
            "tokens_per_s": self.tokens_per_s,
        } | ({"generation": self.generation} if self.generation is not None else {})
