"""DiffusionGemma (google/diffusiongemma-26B-A4B-it): transformers' own block-diffusion model.

Unlike LLaDA and Dream it is not one bidirectional network over [prompt | masks]:

- a causal **encoder** reads the clean prompt into a KV cache;
- a bidirectional **decoder** denoises a canvas of ``config.canvas_length`` tokens that reads that
  cache; encoder and decoder share every text weight (tied), but are separate modules, so peft
  puts separate adapters on ``model.encoder...q_proj`` and ``model.decoder...q_proj``;
- the corruption is **uniform renoising** (a corrupted position holds a uniformly random token),
  there is no mask token; the decoder also reads the previous step's logits (self-conditioning).

The noise level reaching the adapters is set by two forward pre-hooks installed at load time
(:func:`install_level_hooks`), so it is right in training, scoring and inside transformers'
``generate`` alike: the encoder always runs at level 0 (its input is clean), the decoder at the
level a :class:`CanvasLevels` source gives for the canvas it is about to read
(:mod:`harness.processes.uniform.forward` defines it: the fraction of canvas positions drawn from noise).

Text only: the vision tower is loaded (it is part of the checkpoint) but never called; bench's
:class:`~harness.models.dlm.DiffusionLM` call (ids + mask tokens) does not fit this model and
stops with one line that names what is supported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from harness.ground.errors import BenchError
from harness.models.family import Family

FAMILY_NAME = "diffusion_gemma"
MODEL_TYPE = "diffusion_gemma"
HUB_ID = "google/diffusiongemma-26B-A4B-it"
UNIFORM = "uniform"
GENERATION_FILE = "generation_config.json"  # the sampler settings a checkpoint ships

LevelSource = Callable[[dict], torch.Tensor]  # decoder forward kwargs -> (batch,) levels


def _no_masked_call(_ids, _attention) -> dict:
    raise BenchError(
        "DiffusionGemma is a uniform-noise block-diffusion model without a mask token: "
        "supported are harness.processes.uniform.forward (training loss, canvas logits) and "
        "harness.processes.uniform.sampler (its own generate); masked-diffusion sampling, "
        "likelihood scoring and lm-eval are not"
    )


def _checkpointing(model: nn.Module) -> None:
    # The decoder layers are transformers GradientCheckpointingLayers; the encoder layers are not
    # (they write the shared KV cache once), which is what transformers' API does by itself.
    model.gradient_checkpointing_enable({"use_reentrant": False})


class CanvasLevels:
    """Where the decoder's noise level comes from: one tensor set per forward, or a source.

    ``source`` (a function of the decoder's keyword arguments) wins when set; ``generate`` in
    :mod:`harness.processes.uniform.sampler` installs one for the length of a call.
    """

    def __init__(self) -> None:
        self.level: torch.Tensor | None = None
        self.source: LevelSource | None = None
        self.on_encoder: Callable[[], None] | None = None

    def decoder_level(self, kwargs: dict) -> torch.Tensor:
        if self.source is not None:
            return self.source(kwargs)
        if self.level is None:
            raise BenchError(
                "DiffusionGemma decoder called without a noise level: call it through "
                "harness.processes.uniform.forward.canvas_logits or harness.processes.uniform.sampler"
            )
        return self.level


def base_model(backbone: nn.Module) -> nn.Module:
    """The transformers model under a peft wrapper (or the backbone itself)."""
    get = getattr(backbone, "get_base_model", None)
    return get() if callable(get) else backbone


def install_level_hooks(dlm) -> CanvasLevels:
    """Set ``dlm.channel`` before every encoder (level 0) and decoder (canvas level) forward.

    The channel is looked up on ``dlm`` at every call, as :meth:`DiffusionLM.forward` does, never
    kept from load time: a worker that keeps its base loaded from cell to cell gives it a fresh
    channel after each cell (:func:`harness.run.executors.model_cache.restore_base`), and the
    next cell's noise-aware adapters (NaRA's core bank, binned LoRA's router) subscribe to that
    one.
    """
    model = base_model(dlm.backbone)
    levels = CanvasLevels()

    def before_encoder(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:  # generate may run the encoder on nothing new: no adapters run then
            dlm.channel.set(torch.zeros(ids.shape[0], device=ids.device))
        if levels.on_encoder is not None:
            levels.on_encoder()

    def before_decoder(_module, args, kwargs):
        ids = kwargs.get("decoder_input_ids", args[0] if args else None)
        level = levels.decoder_level({**kwargs, "decoder_input_ids": ids})
        dlm.channel.set(level.to(device=ids.device, dtype=torch.float32))

    model.model.encoder.register_forward_pre_hook(before_encoder, with_kwargs=True)
    model.model.decoder.register_forward_pre_hook(before_decoder, with_kwargs=True)
    return levels


def saved_generation_config(folder: Path):
    """The sampler settings saved with a folder (its ``generation_config.json``), read without
    the weights as transformers reads them; an empty config when it has none, which is what the
    loaded model then holds. A file transformers refuses stops in one line."""
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
        DiffusionGemmaGenerationConfig,
    )

    if not (folder / GENERATION_FILE).is_file():
        return DiffusionGemmaGenerationConfig()
    try:
        return DiffusionGemmaGenerationConfig.from_pretrained(folder, local_files_only=True)
    except (ValueError, TypeError, AttributeError) as err:
        raise BenchError(
            f"{folder / GENERATION_FILE} is not a DiffusionGemma generation config: {err}"
        ) from err


def text_only_problems(model: nn.Module) -> list[str]:
    """Parameters of the text path that are not finite (the vision tower is never used)."""
    bad = []
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if "vision" in name or not tensor.is_floating_point():
            continue
        if not bool(torch.isfinite(tensor).all()):
            bad.append(name)
    return bad


def load_diffusion_gemma(
    source: str, name: str, device: torch.device, dtype: torch.dtype, local_files_only: bool
):
    """Tokenizer + ``DiffusionGemmaForBlockDiffusion`` (built into transformers), checked."""
    from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion

    from harness.models.dlm import DiffusionLM, ModelInfo
    from harness.models.remote import _check_loading
    from harness.models.tokenizer import HFTokenizer

    tok = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    tokenizer = HFTokenizer(tok, name, prepend_bos=True, needs_mask=False)
    model, loading = DiffusionGemmaForBlockDiffusion.from_pretrained(
        source, dtype=dtype, output_loading_info=True, local_files_only=local_files_only
    )
    _check_loading(source, loading)
    model = model.to(device).eval()
    bad = text_only_problems(model)
    if bad:
        raise BenchError(f"model {name!r} has non-finite values in {bad[0]}: corrupt checkpoint")
    vocab = model.config.text_config.vocab_size
    if vocab < tokenizer.vocab_size:
        raise BenchError(
            f"model {name!r} has {vocab} output logits, fewer than the tokenizer's "
            f"{tokenizer.vocab_size} tokens: tokenizer and model do not match"
        )
    info = ModelInfo(name=name, family=FAMILY_NAME, source=source)
    dlm = DiffusionLM(model, tokenizer, info)
    dlm.canvas_levels = install_level_hooks(dlm)
    return dlm


def _load(source, name, family, device, dtype, local_files_only):
    return load_diffusion_gemma(source, name, device, dtype, local_files_only)


DIFFUSION_GEMMA = Family(
    name=FAMILY_NAME,
    noise_process=UNIFORM,
    prepend_bos=True,  # Gemma's tokenizer starts every sequence with <bos> by default
    model_inputs=_no_masked_call,
    enable_checkpointing=_checkpointing,
    load=_load,
)
