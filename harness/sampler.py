"""Kept for existing imports: the sampler lives in :mod:`harness.sampling`."""

from harness.sampling import (
    SCHEDULES,
    SamplerConfig,
    SamplingStats,
    generate,
    left_pad,
    transfer_counts,
)

__all__ = [
    "SCHEDULES",
    "SamplerConfig",
    "SamplingStats",
    "generate",
    "left_pad",
    "transfer_counts",
]
