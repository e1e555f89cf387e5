"""The uniform-noise process as the registry sees it."""

from __future__ import annotations

from harness.processes.registry import Process
from harness.processes.uniform.evaluate import evaluate_uniform, preflight
from harness.processes.uniform.objective import UniformNoiseObjective
from harness.processes.uniform.sampler import GemmaSamplingConfig, generate_canvas


def quick_sample(dlm, prompt_ids: list[int], config) -> tuple[list[int], str]:
    """transformers' own DiffusionGemma ``generate``: ``config.gen_length`` new tokens in at most
    ``config.steps`` denoising steps per canvas, the rest from the model's generation config."""
    settings = GemmaSamplingConfig(
        max_new_tokens=config.gen_length, max_denoising_steps=config.steps
    )
    outs, stats = generate_canvas(dlm, [prompt_ids], settings)
    return outs[0], f"DiffusionGemma generate: {stats}"


PROCESS = Process("uniform", UniformNoiseObjective, evaluate_uniform, quick_sample, preflight)
