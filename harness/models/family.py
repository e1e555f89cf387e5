"""What differs between model families, in one small record per family (found by name in
:mod:`harness.models.registry`).

The loader, :class:`~harness.models.dlm.DiffusionLM` and the tokenizer wrapper read a
:class:`Family` instead of branching on names: how the released code must be repaired at load
time, which inputs its released evaluation builds (attention mask, position ids, BOS), whether its
logits are shifted, and how to turn on gradient checkpointing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.ground.errors import BenchError

# The Llama-style layer names most families use (LLaDA names its own).
ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_TARGETS = ("gate_proj", "up_proj", "down_proj")
STANDARD_ROLES = (
    ("q_proj", "q"),
    ("k_proj", "k"),
    ("v_proj", "v"),
    ("o_proj", "o"),
    ("gate_proj", "gate"),
    ("up_proj", "up"),
    ("down_proj", "down"),
)


def _no_repairs(_obj) -> tuple[str, ...]:
    return ()


def _no_problems(_model: nn.Module) -> list[str]:
    return []


def plain_inputs(input_ids: torch.Tensor, attention: torch.Tensor | None) -> dict:
    """The input ids, plus the 2-D 0/1 attention mask when some position is padding."""
    kwargs: dict = {"input_ids": input_ids}
    if attention is not None and not bool(attention.bool().all()):
        kwargs["attention_mask"] = attention
    return kwargs


def transformers_checkpointing(model: nn.Module) -> None:
    """transformers' own API (non-reentrant, so frozen inputs need no ``requires_grad``)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise BenchError(
            f"{type(model).__name__} does not support gradient checkpointing; "
            "set train.gradient_checkpointing=false"
        )
    model.gradient_checkpointing_enable({"use_reentrant": False})


@dataclass(frozen=True)
class Family:
    """How bench treats one model family.

    prepare_class: patches the released model class before ``from_pretrained`` (idempotent);
        returns the names of the repairs the class needs.
    repair_model: repairs a loaded instance; returns the names of the repairs applied.
    rotary_problems: where the rotary tables differ from their definition in the config.
    noise_process: how the family corrupts text, which defines the noise level t its adapters
        are fed: "masking" (t = masking rate, :mod:`harness.processes.masked.forward`) or "uniform" (t = the
        fraction of canvas positions drawn from noise, :mod:`harness.processes.uniform.forward`).
    model_inputs: the forward's keyword arguments for (ids, 0/1 attention or None), as the
        family's released evaluation builds them.
    default_targets / mlp_targets: the linear layers adapters go on by default, and the MLP's.
    linear_roles: each linear layer name's role in a transformer layer (q, k, v, o, gate, up,
        down), which a cost estimate reads shapes by.
    cache_backend: how the masked sampler records and reads a block-wise KV cache on this
        family's modules (:mod:`harness.processes.masked.sampling.cache`); None: no cache.
    load: ``(source, name, device, dtype, local_files_only) -> model`` for families that do not
        load as a released remote-code denoiser (DiffusionGemma, causal LMs); None: that path.
    """

    name: str
    # What the base model is trained to do: "masked-diffusion" (a denoiser, DiffusionLM) or
    # "autoregressive" (next-token prediction, CausalLM). Methods name the objectives they serve.
    objective: str = "masked-diffusion"
    noise_process: str = "masking"  # "masking" (a mask token) | "uniform" (random tokens)
    shift_logits: bool = False  # logits at i predict token i+1 (Dream)
    prepend_bos: bool = False  # prompts start with BOS, as in the family's SFT and evaluation
    default_mask_id: int | None = None  # when the tokenizer names no mask token (LLaDA)
    prepare_class: Callable[[type], tuple[str, ...]] = _no_repairs
    repair_model: Callable[[nn.Module], tuple[str, ...]] = _no_repairs
    rotary_problems: Callable[[nn.Module], list[str]] = _no_problems
    model_inputs: Callable[[torch.Tensor, torch.Tensor | None], dict] = plain_inputs
    enable_checkpointing: Callable[[nn.Module], None] = transformers_checkpointing
    default_targets: tuple[str, ...] = ATTENTION_TARGETS
    mlp_targets: tuple[str, ...] = MLP_TARGETS
    linear_roles: tuple[tuple[str, str], ...] = STANDARD_ROLES
    cache_backend: Any = None
    load: Callable[..., Any] | None = None

    @property
    def process(self) -> str:
        """The noise process (:mod:`harness.processes`) that trains, samples and scores it."""
        if self.objective == AUTOREGRESSIVE:
            return "causal"
        return {"masking": "masked", "uniform": "uniform"}[self.noise_process]


GENERIC_FAMILY = Family("generic", mlp_targets=())
AUTOREGRESSIVE = "autoregressive"
MASKED_DIFFUSION = "masked-diffusion"
OBJECTIVES = (MASKED_DIFFUSION, AUTOREGRESSIVE)
