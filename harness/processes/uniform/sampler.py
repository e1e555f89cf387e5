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

The sampler's settings (steps, entropy bound, temperature schedule, stopping thresholds) are
resolved in transformers' own order (:func:`resolve_generation`): bench's sampling config, else
the model's ``generation_config``, else transformers' global defaults, which its ``generate``
applies to whatever neither sets. So a folder whose generation config leaves ``entropy_bound``
or ``t_min`` out samples with the tokens transformers would give it, not with a refusal after
training; the values and where each came from are recorded with every score
(``sampling.generation``). A combination transformers would refuse (say a folder's ``t_max``
below the default ``t_min``) fails in one line, and the run's preflight asks for it before any
cell starts (:func:`harness.processes.uniform.evaluate.preflight`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from harness.ground.errors import BenchError
from harness.models.diffusion_gemma import GENERATION_FILE, base_model
from harness.processes.sampler_stats import SamplingStats
from harness.processes.uniform.forward import NOISE_LEVELS


@dataclass(frozen=True)
class GemmaSamplingConfig:
    """Settings of transformers' DiffusionGemma ``generate``; None = the model's own
    ``generation_config`` (the released checkpoint ships one), else transformers' default."""

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
    settings: GenerationSettings | None = None  # what generate ran with, and from where


GENERATION_FIELDS = (
    "max_denoising_steps",
    "entropy_bound",
    "t_min",
    "t_max",
    "stability_threshold",
    "confidence_threshold",
)
FROM_SAMPLING = "sampling"  # bench's sampling config (--steps sets max_denoising_steps)
FROM_MODEL = "generation_config"  # the model folder's generation_config.json
FROM_DEFAULT = "transformers default"  # DiffusionGemmaGenerationConfig's global defaults


@dataclass(frozen=True)
class GenerationSettings:
    """The sampler settings a ``generate`` call uses and where each came from."""

    values: dict[str, float | int]
    sources: dict[str, str]

    def to_dict(self) -> dict:
        return {"values": dict(self.values), "sources": dict(self.sources)}

    def generate_kwargs(self) -> dict:
        from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
            EntropyBoundSamplerConfig,
        )

        values = dict(self.values)
        bound = values.pop("entropy_bound")
        return {**values, "sampler_config": EntropyBoundSamplerConfig(entropy_bound=bound)}


def _own_value(own, name: str):
    if name == "entropy_bound":
        return getattr(getattr(own, "sampler_config", None), "entropy_bound", None)
    return getattr(own, name, None)


def resolve_generation(own, config: GemmaSamplingConfig, where: str) -> GenerationSettings:
    """Each field from the sampling config, else the model's ``generation_config`` (``own``),
    else transformers' global default: the order transformers' own ``generate`` applies
    (``_prepare_generation_config``: call arguments > the model's generation config >
    ``DiffusionGemmaGenerationConfig._get_default_generation_params()``), so a folder that
    leaves a field unset samples exactly as transformers would sample it. The defaults are read
    from the installed transformers, not copied. ``where`` names the generation config in the
    one-line error a combination transformers would refuse gets (e.g. a folder's t_max below
    the default t_min), raised here, before any sampling.
    """
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
        DiffusionGemmaGenerationConfig,
    )

    defaults = DiffusionGemmaGenerationConfig._get_default_generation_params()
    defaults["entropy_bound"] = defaults["sampler_config"].entropy_bound
    values, sources = {}, {}
    for name in GENERATION_FIELDS:
        for source, value in (
            (FROM_SAMPLING, getattr(config, name)),
            (FROM_MODEL, None if own is None else _own_value(own, name)),
            (FROM_DEFAULT, defaults[name]),
        ):
            if value is not None:
                values[name], sources[name] = value, source
                break
    settings = GenerationSettings(_typed(values), sources)
    _check(settings, where)
    return settings


def _typed(values: dict) -> dict:
    """transformers checks types strictly (a float bound, an int threshold); a setting given as
    1 for 1.0 keeps its value."""
    ints = ("max_denoising_steps", "stability_threshold")
    return {k: int(v) if k in ints else float(v) for k, v in values.items()}


def _check(settings: GenerationSettings, where: str) -> None:
    """transformers' own validation of the resolved settings, as one line naming the field."""
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
        DiffusionGemmaGenerationConfig,
    )

    values, sources = settings.values, settings.sources
    how = f"set it in {where}"
    if values["t_max"] <= values["t_min"]:
        raise BenchError(
            f"DiffusionGemma sampling: t_max {values['t_max']} ({sources['t_max']}) is not above "
            f"t_min {values['t_min']} ({sources['t_min']}); set both in {where}"
        )
    for name in GENERATION_FIELDS:
        value = values[name]
        low_ok = value >= 0 if name in ("t_min", "t_max", "stability_threshold") else value > 0
        if not low_ok:
            raise BenchError(
                f"DiffusionGemma sampling: {name} {value} ({sources[name]}) is out of range; {how}"
            )
    try:
        DiffusionGemmaGenerationConfig(**settings.generate_kwargs())
    except ValueError as err:  # a rule of a later transformers version
        raise BenchError(
            f"DiffusionGemma sampling settings refused by transformers: {err}; {how}"
        ) from err


def _where(dlm) -> str:
    """Where a user sets the model's sampler settings: its folder's generation_config.json."""
    source = Path(dlm.info.source)
    if source.is_dir():
        return str(source / GENERATION_FILE)
    return f"the {GENERATION_FILE} of {dlm.info.source} (or download it and pass --model DIR)"


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
    settings = resolve_generation(model.generation_config, config, _where(dlm))
    steps = settings.values["max_denoising_steps"]
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), tok.pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        attention[i, width - len(prompt) :] = 1

    stats = GemmaSamplingStats(settings=settings)
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
            **settings.generate_kwargs(),
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
        stats_into.generation = settings.to_dict()
    completions = []
    for row in out.sequences[:, width:].tolist():
        cut = row.index(tok.eos_token_id) if tok.eos_token_id in row else len(row)
        completions.append([t for t in row[:cut] if t != tok.pad_token_id])
    return completions, stats
