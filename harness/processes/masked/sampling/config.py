"""The sampler's settings, validated once: a bad value fails before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.config.sampling import (
    ParallelRule,
    RefreshRule,
    parse_cache,
    parse_parallel,
    parse_refresh,
    sampler_label,
)
from harness.ground.errors import BenchError
from harness.processes.masked.sampling.schedule import SCHEDULES


@dataclass(frozen=True)
class SamplerConfig:
    gen_length: int = 64
    steps: int = 64
    block_length: int = 64
    temperature: float = 0.0
    remasking: Literal["low_confidence", "random"] = "low_confidence"
    cfg_scale: float = 0.0
    schedule: str = "linear"
    noise_level: Literal["response", "sequence"] = "response"
    stop_at_eos: bool = True
    cache: str = "none"  # none | prefix | dual
    parallel: str = "none"  # none | threshold:X | factor:X
    cache_refresh: str = "block"  # block | step-level-change:X

    def __post_init__(self) -> None:
        if self.gen_length <= 0 or self.block_length <= 0:
            raise BenchError("gen_length and block_length must be positive")
        if self.gen_length % self.block_length:
            raise BenchError(
                f"gen_length {self.gen_length} is not divisible by block_length {self.block_length}"
            )
        if self.steps < self.num_blocks:
            raise BenchError(
                f"steps {self.steps} is fewer than the number of blocks {self.num_blocks} "
                f"(gen_length / block_length): every block needs at least one step"
            )
        if self.remasking not in ("low_confidence", "random"):
            raise BenchError(f"remasking {self.remasking!r} is not one of: low_confidence, random")
        if self.schedule not in SCHEDULES:
            raise BenchError(f"schedule {self.schedule!r} is not one of: {', '.join(SCHEDULES)}")
        if self.noise_level not in ("response", "sequence"):
            raise BenchError(f"noise_level {self.noise_level!r} is not one of: response, sequence")
        if self.temperature < 0:
            raise BenchError("temperature must be >= 0")
        parse_cache(self.cache)
        parse_refresh(self.cache_refresh)
        if self.parallel_rule.kind != "none" and self.remasking != "low_confidence":
            raise BenchError(
                f"parallel={self.parallel} ranks tokens by confidence: it needs "
                f"remasking=low_confidence, not {self.remasking}"
            )
        if self.cache != "none" and self.cfg_scale > 0:
            raise BenchError(f"cache={self.cache} does not support cfg_scale > 0; use cache=none")

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_length

    @property
    def parallel_rule(self) -> ParallelRule:
        return parse_parallel(self.parallel)

    @property
    def refresh_rule(self) -> RefreshRule:
        return parse_refresh(self.cache_refresh)

    @property
    def label(self) -> str:
        return sampler_label(self.cache, self.parallel, self.cache_refresh)

    def steps_per_block(self) -> list[int]:
        base, extra = divmod(self.steps, self.num_blocks)
        return [base + (1 if b < extra else 0) for b in range(self.num_blocks)]
