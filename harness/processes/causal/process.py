"""The autoregressive process as the registry sees it."""

from __future__ import annotations

from harness.config.cell import EvalConfig
from harness.processes.causal.decode import greedy_generate
from harness.processes.causal.evaluate import evaluate_causal, flow_settings
from harness.processes.causal.objective import CausalObjective
from harness.processes.registry import Process
from harness.processes.sampler_stats import SamplingStats


def quick_sample(dlm, prompt_ids: list[int], config) -> tuple[list[int], str]:
    """Greedy next-token decoding of ``config.gen_length`` tokens (L2D: its default flow)."""
    stats = SamplingStats()
    settings = flow_settings(dlm, EvalConfig(), 0)
    out = greedy_generate(dlm, [prompt_ids], config.gen_length, settings, stats)[0]
    return out, f"greedy: {stats.tokens} tokens, {stats.tokens_per_s or 0:.1f}/s"


PROCESS = Process("causal", CausalObjective, evaluate_causal, quick_sample)
