"""Sampling from masked-diffusion LMs: the plain block sampler, the block-wise KV cache and the
parallel commit rules, each in its own module, behind one :func:`generate`."""

from harness.config.sampling import (
    CACHE_MODES,
    DEFAULTS,
    ParallelRule,
    RefreshRule,
    parse_cache,
    parse_parallel,
    parse_refresh,
    sampler_label,
)
from harness.processes.masked.sampling.config import SamplerConfig
from harness.processes.masked.sampling.loop import generate, left_pad
from harness.processes.masked.sampling.schedule import SCHEDULES, transfer_counts
from harness.processes.sampler_stats import SamplingStats

__all__ = [
    "CACHE_MODES",
    "DEFAULTS",
    "SCHEDULES",
    "ParallelRule",
    "RefreshRule",
    "SamplerConfig",
    "SamplingStats",
    "generate",
    "left_pad",
    "parse_cache",
    "parse_parallel",
    "parse_refresh",
    "sampler_label",
    "transfer_counts",
]
