"""LLaDA (GSAI-ML/LLaDA-8B-Base/Instruct): load-time repairs of its released code, and its inputs.

The released ``modeling_llada.py`` was written for transformers 4.x. Under transformers 5 it needs,
applied here by patching the loaded class (its files stay untouched):

- ``llada:post_init``: ``LLaDAModelLM.__init__`` never calls ``post_init()``, so transformers 5's
  loading finds no ``all_tied_weights_keys``; we call it after the original ``__init__``.
- ``llada:tie_weights_signature``: transformers 5 calls ``tie_weights(missing_keys=...,
  recompute_mapping=...)``; the released override takes no arguments. It is wrapped to accept them.
- ``llada:config.use_cache``: the forward reads ``config.use_cache``, which transformers 5
  configs no longer always carry; it is set to False (LLaDA has no KV cache).

Inputs follow the released code: a 2-D 0/1 attention mask only when there is padding
(``LLaDAModel.forward`` turns it into an additive bias on the padded keys, modeling_llada.py
lines 1303-1306), no position ids (RoPE is relative, so left padding only shifts absolute
positions), and prompts start with ``<|startoftext|>`` (BOS) as in LLaDA's SFT format and its
Instruct chat template.

Gradient checkpointing uses LLaDA's own ``set_activation_checkpointing(whole_layer)``:
``PreTrainedModel.gradient_checkpointing_enable`` refuses the class.
"""

from __future__ import annotations

import functools
import inspect
import sys

import torch
from torch import nn

from harness.models.family import Family, plain_inputs
from harness.models.released_cache import LLaDABackend

LLADA_MASK_ID = 126336


def _calls_post_init(init) -> bool:
    try:
        return "post_init" in inspect.getsource(init)
    except (OSError, TypeError):  # no source to read: calling post_init again is harmless
        return False


def _prepare_class(cls: type) -> tuple[str, ...]:
    repairs = []
    init = cls.__init__
    if not _calls_post_init(getattr(init, "__bench_original__", init)):
        repairs.append("llada:post_init")
        if not hasattr(init, "__bench_original__"):

            @functools.wraps(init)
            def __init__(self, *args, **kwargs):
                init(self, *args, **kwargs)
                self.post_init()

            __init__.__bench_original__ = init
            cls.__init__ = __init__
    tie = cls.__dict__.get("tie_weights")
    if tie is not None:
        original = getattr(tie, "__bench_original__", tie)
        params = inspect.signature(original).parameters
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        if "recompute_mapping" not in params and not takes_kwargs:
            repairs.append("llada:tie_weights_signature")
            if not hasattr(tie, "__bench_original__"):

                @functools.wraps(tie)
                def tie_weights(self, *args, **kwargs):
                    return tie(self)

                tie_weights.__bench_original__ = tie
                cls.tie_weights = tie_weights
    return tuple(repairs)


def _repair_model(model: nn.Module) -> tuple[str, ...]:
    config = model.config
    if getattr(config, "use_cache", None) is None:
        config.use_cache = False
        return ("llada:config.use_cache",)
    return ()


def _rotary_problems(model: nn.Module) -> list[str]:
    """Compare every block's RoPE sin/cos tables with their definition in the config."""
    config = model.config
    if not getattr(config, "rope", False):
        return []
    dim = config.d_model // config.n_heads
    length = min(64, config.max_sequence_length)
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    angles = torch.arange(length, dtype=torch.float64)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    problems = []
    for name, module in model.named_modules():
        if type(module).__name__ != "RotaryEmbedding" or not hasattr(
            module, "get_rotary_embedding"
        ):
            continue
        sin, cos = module.get_rotary_embedding(length, torch.device("cpu"))
        for label, got, want in (("sin", sin, angles.sin()), ("cos", cos, angles.cos())):
            got = got.detach().double().cpu().reshape(length, dim)
            if not torch.allclose(got, want, atol=1e-4, rtol=0):
                problems.append(f"{name} RoPE {label} table differs from rope_theta/d_model")
                break
    return problems


def _enable_checkpointing(model: nn.Module) -> None:
    inner = model.model
    strategy_enum = sys.modules[type(model.config).__module__].ActivationCheckpointingStrategy
    inner.set_activation_checkpointing(strategy_enum.whole_layer)


LLADA = Family(
    name="llada",
    shift_logits=False,
    prepend_bos=True,
    default_mask_id=LLADA_MASK_ID,
    prepare_class=_prepare_class,
    repair_model=_repair_model,
    rotary_problems=_rotary_problems,
    model_inputs=plain_inputs,
    enable_checkpointing=_enable_checkpointing,
    default_targets=("q_proj", "k_proj", "v_proj", "attn_out"),
    mlp_targets=("ff_proj", "up_proj", "ff_out"),
    linear_roles=(
        ("q_proj", "q"),
        ("k_proj", "k"),
        ("v_proj", "v"),
        ("attn_out", "o"),
        ("ff_proj", "gate"),
        ("up_proj", "up"),
        ("ff_out", "down"),
    ),
    cache_backend=LLaDABackend(),
)
