"""The masked-diffusion process as the registry sees it."""

from __future__ import annotations

from harness.processes.masked.evaluate import evaluate_masked, preflight
from harness.processes.masked.objective import DiffusionObjective
from harness.processes.masked.sampling import SamplerConfig, SamplingStats, generate
from harness.processes.registry import Process


def quick_sample(dlm, prompt_ids: list[int], config: SamplerConfig) -> tuple[list[int], str]:
    stats = SamplingStats()
    out = generate(dlm, [prompt_ids], config, stats=stats)[0]
    summary = (
        f"{config.label} (cache used: {stats.cache_used}): {stats.forwards} forwards for "
        f"{stats.tokens} tokens, {stats.tokens_per_s or 0:.1f} tokens/s"
    )
    return out, summary


PROCESS = Process("masked", DiffusionObjective, evaluate_masked, quick_sample, preflight)
