"""The sampler's settings, validated once: a bad value fails before any model is loaded.

``remasking`` picks the sampler: LLaDA's block sampler ranks by ``low_confidence`` or ``random``
(:mod:`harness.processes.masked.sampling.loop`); Dream's own ``diffusion_generate`` algorithms (``origin``,
``maskgit_plus``, ``topk_margin``, ``entropy``, with ``alg_temp`` and ``eps``) run Dream's loop
over the whole answer, without blocks (:mod:`harness.processes.masked.sampling.dream`).
"""

from __future__ import annotations

from dataclasses import dataclass

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

DREAM_ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy")
REMASKINGS = ("low_confidence", "random", *DREAM_ALGS)


@dataclass(frozen=True)
class SamplerConfig:
    gen_length: int = 64
    steps: int = 64
    block_length: int = 64
    temperature: float = 0.0
    remasking: str = "low_confidence"  # low_confidence | random | DREAM_ALGS
    cfg_scale: float = 0.0
    schedule: str = "linear"
    noise_level: str = "response"  # response | sequence
    stop_at_eos: bool = True
    cache: str = "none"  # none | prefix | dual
    parallel: str = "none"  # none | threshold:X | factor:X | fastdllm-threshold:X | ...-factor:X
    cache_refresh: str = "block"  # block | step-level-change:X
    # LLaDA's generate (its Appendix B.4): EOS never a candidate; EOS/EOT candidates ranked last
    logits_eos_inf: bool = False
    confidence_eos_eot_inf: bool = False
    # Dream's diffusion_generate: timesteps linspace(1, eps, steps + 1); alg_temp > 0 draws the
    # committed positions from softmax(confidence / alg_temp) instead of taking the top ones
    alg_temp: float = 0.0
    eps: float = 1e-3

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
        if self.remasking not in REMASKINGS:
            raise BenchError(f"remasking {self.remasking!r} is not one of: {', '.join(REMASKINGS)}")
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
        if self.is_dream:
            self._check_dream()
        elif self.alg_temp or self.eps != 1e-3:
            raise BenchError(
                f"alg_temp and eps belong to Dream's algorithms ({', '.join(DREAM_ALGS)}), "
                f"not remasking={self.remasking}"
            )

    def _check_dream(self) -> None:
        name = f"remasking={self.remasking} (Dream's diffusion_generate)"
        if self.block_length != self.gen_length:
            raise BenchError(
                f"{name} has no blocks: set block_length = gen_length ({self.gen_length})"
            )
        for field, value, plain in (
            ("cache", self.cache, "none"),
            ("parallel", self.parallel, "none"),
            ("cache_refresh", self.cache_refresh, "block"),
            ("schedule", self.schedule, "linear"),
            ("cfg_scale", self.cfg_scale, 0.0),
            ("logits_eos_inf", self.logits_eos_inf, False),
            ("confidence_eos_eot_inf", self.confidence_eos_eot_inf, False),
        ):
            if value != plain:
                raise BenchError(f"{name} does not take {field}={value}; leave it at {plain}")
        if self.alg_temp < 0 or not 0 < self.eps < 1:
            raise BenchError(f"{name}: alg_temp must be >= 0 and eps in (0, 1)")

    @property
    def is_dream(self) -> bool:
        return self.remasking in DREAM_ALGS

    @property
    def notes(self) -> tuple[str, ...]:
        """What a reader of the record must know about how ``steps`` was used."""
        rule = self.parallel_rule
        if rule.ignores_steps:
            return (
                f"steps ignored: parallel={self.parallel} decodes each block until it is full "
                "(Fast-dLLM's rule)",
            )
        if rule.kind != "none" and max(self.steps_per_block()) == 1:
            return (
                f"parallel={self.parallel} with one step per block decodes each block in one "
                f"forward (the schedule's count is its floor); Fast-dLLM's rule is "
                f"parallel=fastdllm-{self.parallel}",
            )
        return ()

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
