"""Dream (Dream-org/Dream-v0-Base/Instruct-7B): load-time repairs of its released code, its inputs.

Repairs under transformers 5, applied by patching the loaded class or instance:

- ``dream:rope_init_default``: ``DreamRotaryEmbedding`` looks up
  ``ROPE_INIT_FUNCTIONS["default"]``, which transformers 5 removed; the module gets its own table
  with a "default" entry (the plain RoPE definition: ``theta ** (-2i / head_dim)``, scale 1).
- ``dream:rotary_inv_freq``: the ``inv_freq`` buffers are not in the checkpoint and
  transformers 5's ``from_pretrained`` leaves them as UNINITIALISED memory (two loads give
  different logits); every rotary module recomputes them from the config after loading.
- ``dream:tied_weights_keys``: the class declares ``_tied_weights_keys`` as a 4.x list, which
  transformers 5's ``save_pretrained`` cannot read; it becomes the 5.x mapping
  ``{"lm_head.weight": "model.embed_tokens.weight"}`` (used only when the config ties them).

Inputs follow the released ``generation_utils.py`` (``_sample``, lines 391-404): without padding
no attention mask at all; with padding a 4-D boolean mask ``[B, 1, N, N]`` (query and key both
real) and position ids ``cumsum(mask) - 1`` (1 at padded positions). This works both with the
fixture's ``DreamModel.forward`` (which converts 2-D masks itself) and with the hub version (which
hands the mask to SDPA untouched). The logits are shifted by one (line 414), so every prompt
starts with BOS and position 0 is never scored.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from harness.ground.errors import BenchError
from harness.models.family import Family, transformers_checkpointing
from harness.models.released_cache import DreamBackend

DREAM_TIED = {"lm_head.weight": "model.embed_tokens.weight"}


def default_rope_init(config, device=None, **_kwargs) -> tuple[torch.Tensor, float]:
    """Plain RoPE frequencies from the config (what transformers 4.x called "default")."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    dim = int(head_dim * getattr(config, "partial_rotary_factor", 1.0))
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float)
    return 1.0 / (config.rope_theta ** (exponents / dim)), 1.0


def _prepare_class(cls: type) -> tuple[str, ...]:
    module = sys.modules[cls.__module__]
    table = getattr(module, "ROPE_INIT_FUNCTIONS", None)
    if table is not None and "default" not in table:
        module.ROPE_INIT_FUNCTIONS = {**table, "default": default_rope_init}
        module._bench_rope_repaired = True
    for klass in cls.__mro__:
        if isinstance(klass.__dict__.get("_tied_weights_keys"), list):
            klass._tied_weights_keys = dict(DREAM_TIED)
            cls._bench_tied_repaired = True
    repairs = []
    if getattr(module, "_bench_rope_repaired", False):
        repairs.append("dream:rope_init_default")
    if getattr(cls, "_bench_tied_repaired", False):
        repairs.append("dream:tied_weights_keys")
    return tuple(repairs)


def _repair_model(model: nn.Module) -> tuple[str, ...]:
    fixed = 0
    for module in model.modules():
        if isinstance(getattr(module, "inv_freq", None), torch.Tensor) and hasattr(
            module, "rope_init_fn"
        ):
            device = module.inv_freq.device
            inv_freq, scaling = module.rope_init_fn(module.config, device, **module.rope_kwargs)
            module.register_buffer("inv_freq", inv_freq.to(device), persistent=False)
            module.original_inv_freq = module.inv_freq
            module.attention_scaling = scaling
            fixed += 1
    return ("dream:rotary_inv_freq",) if fixed else ()


def inv_freq_problems(model: nn.Module) -> list[str]:
    """``inv_freq`` buffers that differ from plain RoPE as the model's config defines it."""
    config = getattr(model, "config", None)
    problems = []
    for name, module in model.named_modules():
        buffer = getattr(module, "inv_freq", None)
        if not isinstance(buffer, torch.Tensor) or config is None:
            continue
        scaling = getattr(config, "rope_scaling", None) or {}
        rope_type = scaling.get("rope_type", scaling.get("type", "default"))
        if rope_type != "default":
            raise BenchError(
                f"{name}: rope_scaling type {rope_type!r} cannot be checked by bench; "
                "supported: plain RoPE (rope_scaling null)"
            )
        head_dim = getattr(config, "head_dim", None) or (
            config.hidden_size // config.num_attention_heads
        )
        dim = int(head_dim * getattr(config, "partial_rotary_factor", 1.0))
        expected = float(config.rope_theta) ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        got = buffer.detach().double().cpu()
        if got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-5, atol=0):
            problems.append(f"{name}.inv_freq differs from rope_theta={config.rope_theta}")
    return problems


def dream_inputs(input_ids: torch.Tensor, attention: torch.Tensor | None) -> dict:
    """No mask without padding; with padding a 4-D bool mask and position ids (generation_utils)."""
    if attention is None or bool(attention.bool().all()):
        return {"input_ids": input_ids}
    attention = attention.to(input_ids.device)
    real = attention.bool()
    mask = torch.logical_and(real[:, None, None, :], real[:, None, :, None])
    positions = attention.long().cumsum(-1) - 1
    positions = positions.masked_fill(~real, 1)
    return {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions}


DREAM = Family(
    name="dream",
    shift_logits=True,
    prepend_bos=True,
    prepare_class=_prepare_class,
    repair_model=_repair_model,
    rotary_problems=inv_freq_problems,
    model_inputs=dream_inputs,
    enable_checkpointing=transformers_checkpointing,
    cache_backend=DreamBackend(),
)
