"""Sampling DiffusionGemma through transformers' own ``generate``, noise level hooked in.

Its sampler, stopping rules and KV cache run unchanged (``DiffusionGemmaGenerationMixin``): the
entropy-bounded sampler accepts the lowest-entropy tokens of each step and redraws every other
canvas position uniformly, a canvas stops early when its argmax is stable and confident, and the
outer loop appends canvases until EOS or ``max_new_tokens``. Bench only installs, for the length
of one call, the source of the decoder's noise level (read by the pre-hook of
:mod:`harness.models.diffusion_gemma` before every decoder forward):

- ``noise_level="drawn"`` (default, :mod:`harness.processes.uniform.forward`): the fraction of canvas
  positions drawn from noise, 1 at the first step of a canvas and afterwards the fraction the
  sampler renoised at the previous step (``1 - mean(accepted_token_mask)``), read from the
  sampler object ``generate`` builds (captured from its ``_prepare_sampler``);
- ``noise_level="schedule"``: the schedule position ``cur_step / max_denoising_steps`` (1, then
  (N-1)/N, ...), counted from the decoder calls since the last encoder call.

Rows whose canvas already stopped still ride along in the batch forward (transformers keeps
their canvas); their level is computed the same way and their output is discarded by
``generate``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import torch

from harness.ground.errors import BenchError
from harness.models.diffusion_gemma import base_model
from harness.processes.sampler_stats import SamplingStats
from harness.processes.uniform.forward import NOISE_LEVELS

GENERATION_FIELDS = (
    "max_denoising_steps",
    "entropy_bound",
    "t_min",
    "t_max",
    "stability_threshold",
    "confidence_threshold",
)


@dataclass(frozen=True)
class GemmaSamplingConfig:
    """Settings of transformers' DiffusionGemma ``generate``; None = the model's own
    ``generation_config`` (the released checkpoint ships one)."""

    max_new_tokens: int = 256
    max_denoising_steps: int | None = None
    entropy_bound: float | None = None
    t_min: float | None = None
    t_max: float | None = None
    stability_threshold: int | None = None
    confidence_threshold: float | None = None
    noise_level: Literal["drawn", "schedule"] = "drawn"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.noise_level not in NOISE_LEVELS:
            raise BenchError(
                f"noise_level {self.noise_level!r} is not one of: {', '.join(NOISE_LEVELS)}"
            )
        if self.max_new_tokens < 1:
            raise BenchError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass
class GemmaSamplingStats:
    decoder_forwards: int = 0  # batch forwards of the decoder (counted by the hook)
    forwards_per_token: list[float] = field(default_factory=list)  # per row, from generate
    levels: list[list[float]] = field(default_factory=list)  # the level of every decoder call


def _settings(model, config: GemmaSamplingConfig) -> dict:
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
        EntropyBoundSamplerConfig,
    )

    own = model.generation_config
    values = {}
    for name in GENERATION_FIELDS:
        value = getattr(config, name)
        if value is None and name == "entropy_bound":
            sampler = getattr(own, "sampler_config", None)
            value = getattr(sampler, "entropy_bound", None)
        elif value is None:
            value = getattr(own, name, None)
        if value is None:
            raise BenchError(
                f"DiffusionGemma sampling needs {name}: the model's generation_config sets none; "
                f"set it in the sampling config"
            )
        values[name] = value
    bound = float(values.pop("entropy_bound"))
    return {**values, "sampler_config": EntropyBoundSamplerConfig(entropy_bound=bound)}


@torch.no_grad()
def generate_canvas(
    dlm,
    prompts: list[list[int]],
    config: GemmaSamplingConfig = GemmaSamplingConfig(),
    stats_into: SamplingStats | None = None,
) -> tuple[list[list[int]], GemmaSamplingStats]:
    """Completions (cut at the first EOS) of left-padded ``prompts`` and the sampling stats.

    ``stats_into`` (bench's :class:`SamplingStats`, shared with the masking sampler) gets the
    decoder forwards, the row forwards (per row ``generated tokens / tokens_per_forward``, which
    is transformers' own count of the forwards that row took part in; all batch forwards for a
    row that generated nothing) and the generated tokens (pads after EOS left out, as
    transformers counts them).
    """
    levels = getattr(dlm, "canvas_levels", None)
    if levels is None:
        raise BenchError(f"model {dlm.info.name!r} is not a DiffusionGemma model")
    model = base_model(dlm.backbone)
    tok = dlm.tokenizer
    settings = _settings(model, config)
    steps = int(settings["max_denoising_steps"])
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), tok.pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        attention[i, width - len(prompt) :] = 1

    stats = GemmaSamplingStats()
    state = {"sampler": None, "step": 0}

    def capture(generation_config):
        state["sampler"] = original(generation_config)
        return state["sampler"]

    def new_canvas() -> None:
        state["step"] = 0

    def level_of(kwargs: dict) -> torch.Tensor:
        canvas = kwargs["decoder_input_ids"]
        rows = canvas.shape[0]
        accepted = getattr(state["sampler"], "accepted_token_mask", None)
        if config.noise_level == "schedule":
            level = torch.full((rows,), (steps - state["step"]) / steps, device=canvas.device)
        elif state["step"] == 0 or accepted is None:
            level = torch.ones(rows, device=canvas.device)
        else:
            level = 1.0 - accepted.float().mean(dim=-1)
        state["step"] += 1
        stats.decoder_forwards += 1
        stats.levels.append(level.tolist())
        return level

    original = model._prepare_sampler
    model._prepare_sampler = capture
    levels.source, levels.on_encoder = level_of, new_canvas
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    try:
        out = model.generate(
            ids.to(dlm.device),
            attention_mask=attention.to(dlm.device),
            max_new_tokens=config.max_new_tokens,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            disable_compile=True,
            **settings,
        )
    finally:
        del model._prepare_sampler  # the instance attribute; the class method is back
        levels.source = levels.on_encoder = None
    elapsed = time.perf_counter() - start
    new = out.sequences[:, width:]
    valid = (new != tok.pad_token_id).sum(dim=-1).tolist()
    passes = [
        round(n / float(tpf)) if n > 0 else stats.decoder_forwards
        for n, tpf in zip(valid, out.tokens_per_forward.tolist(), strict=True)
    ]
    stats.forwards_per_token = [
        p / n if n else float("inf") for p, n in zip(passes, valid, strict=True)
    ]
    if stats_into is not None:
        stats_into.forwards += stats.decoder_forwards
        stats_into.row_forwards += sum(passes)
        stats_into.tokens += sum(valid)
        stats_into.time_s += elapsed
    completions = []
    for row in out.sequences[:, width:].tolist():
        cut = row.index(tok.eos_token_id) if tok.eos_token_id in row else len(row)
        completions.append([t for t in row[:cut] if t != tok.pad_token_id])
    return completions, stats
