"""One call for every masked-diffusion denoiser: logits given noisy ids and the noise level.

Training, sampling, likelihood scoring and lm-eval all call :class:`DiffusionLM`, so all of them
feed adapters the noise level through the same channel, and model-family quirks (Dream's
shifted logits) live in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harness.ground.noise_level import NoiseChannel
from harness.models.family import MASKED_DIFFUSION
from harness.models.registry import get_family
from harness.models.tokenizer import Tokenizer


@dataclass(frozen=True)
class ModelInfo:
    """What the rest of the harness may need to know about a loaded model."""

    name: str  # alias or folder the user gave
    family: str  # "tiny" | "llada" | "dream" | "generic" | "tiny-ar" | "llama" | "qwen2"
    source: str  # local folder or hub id actually loaded
    shift_logits: bool = False  # Dream: position i is predicted from hidden state i-1
    repairs: tuple[str, ...] = ()  # load-time repairs of the released code (family modules)


class WrappedModel(nn.Module):
    """A backbone (possibly adapted by a PEFT method), its tokenizer, what the harness knows about
    it and its family's record: what every model the harness calls holds (:class:`DiffusionLM`,
    :class:`~harness.models.causal.CausalLM`), so methods wrap either backbone the same way."""

    def __init__(self, backbone: nn.Module, tokenizer: Tokenizer, info: ModelInfo) -> None:
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.info = info

    @property
    def family(self):
        """The family record of ``info.family`` (looked up each time, so it follows ``info``)."""
        return get_family(self.info.family)

    def enable_gradient_checkpointing(self) -> None:
        """The family's own way (LLaDA's activation checkpointing, transformers' API elsewhere);
        with a peft wrapper around the backbone, the wrapped model is the one switched."""
        model = self.backbone
        base = getattr(model, "get_base_model", None)
        self.family.enable_checkpointing(base() if callable(base) else model)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device


class DiffusionLM(WrappedModel):
    """A denoiser plus its noise channel, through which adapters read the noise level."""

    objective = MASKED_DIFFUSION  # harness.models.causal.CausalLM: "autoregressive"

    def __init__(self, backbone: nn.Module, tokenizer: Tokenizer, info: ModelInfo) -> None:
        super().__init__(backbone, tokenizer, info)
        self.channel = NoiseChannel()

    def reset_channel(self) -> None:
        """A fresh noise channel (no subscriber left from an earlier adapter)."""
        self.channel = NoiseChannel()

    @property
    def mask_id(self) -> int:
        return self.tokenizer.mask_token_id

    def forward(
        self,
        input_ids: torch.Tensor,
        noise_level: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **backbone_kwargs,
    ) -> torch.Tensor:
        """Logits of shape (batch, length, vocab); ``noise_level`` has shape (batch,).

        ``attention_mask`` is the 0/1 (batch, length) mask of real tokens; the family turns it into
        what its released evaluation passes (e.g. Dream: nothing, or a 4-D mask + position ids).
        ``backbone_kwargs`` reach the backbone unchanged (the sampler's KV cache uses them).
        """
        self.channel.set(noise_level.to(device=input_ids.device, dtype=torch.float32))
        inputs = self.family.model_inputs(input_ids, attention_mask)
        out = self.backbone(**inputs, **backbone_kwargs)
        logits = out.logits if hasattr(out, "logits") else out
        if self.info.shift_logits:
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits
