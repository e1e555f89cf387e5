"""One call for every autoregressive base: next-token logits given ids, as DiffusionLM is for
denoisers.

A :class:`CausalLM` has the attributes the harness reads from a :class:`DiffusionLM`
(``backbone``, ``tokenizer``, ``info``, ``channel``, ``family``, ``device``), so methods wrap its
backbone the same way (peft for LoRA/DoRA, ``methods.l2d`` for the flow stream). What differs is the
objective: training, evaluation and likelihood scoring read :attr:`objective` and pick the
autoregressive protocol (``harness.processes.causal``).

Its channel carries the flow time of L2D, one value per position (batch, length): the training
loop draws it, L2D reads it, every other method ignores it. No channel level means t = 0, the base.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.models.dlm import ModelInfo, WrappedModel
from harness.models.family import AUTOREGRESSIVE
from harness.models.tokenizer import Tokenizer


class FlowTime:
    """The per-position flow time of the next forward (None: t = 0, the base model), and the
    generator its flow noise is drawn from (None: torch's global one)."""

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None
        self.generator: torch.Generator | None = None

    def set(self, t: torch.Tensor | None, generator: torch.Generator | None = None) -> None:
        if t is not None and t.dim() != 2:
            raise ValueError(f"flow time must have shape (batch, length), got {tuple(t.shape)}")
        self.value, self.generator = t, generator


class CausalLM(WrappedModel):
    """A causal LM backbone (possibly adapted) plus its tokenizer: logits[:, i] predict token i+1."""

    objective = AUTOREGRESSIVE

    def __init__(self, backbone: nn.Module, tokenizer: Tokenizer, info: ModelInfo) -> None:
        super().__init__(backbone, tokenizer, info)
        self.flow_time = FlowTime()

    @property
    def channel(self) -> FlowTime:
        return self.flow_time

    def reset_channel(self) -> None:
        """A fresh flow-time channel (no subscriber left from an earlier adapter)."""
        self.flow_time = FlowTime()

    @property
    def mask_id(self) -> int:
        return self.tokenizer.pad_token_id

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        flow_time: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        **backbone_kwargs,
    ) -> torch.Tensor:
        """Logits (batch, length, vocab). ``attention_mask`` is the 0/1 mask of real tokens;
        positions count real tokens only, so left and right padding give the same logits.
        ``flow_time`` (batch, length) and ``generator`` reach a flow adapter (L2D) only."""
        self.flow_time.set(flow_time, generator)
        kwargs = dict(backbone_kwargs)
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
            kwargs.setdefault("position_ids", positions(attention_mask))
        out = self.backbone(input_ids=input_ids, **kwargs)
        return out.logits if hasattr(out, "logits") else out

    def next_logits(self, input_ids, attention_mask, cache, settings=None, stats=None):
        """(logits (B, V) of the token after the last position, flow evaluations per row),
        extending ``cache`` (a transformers cache of the earlier positions). An adapter that
        decodes its own way (L2D: a flow per token) provides ``next_token_logits``."""
        own = getattr(self.backbone, "next_token_logits", None)
        if own is not None:
            return own(input_ids, attention_mask, cache, settings, stats)
        out = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions(attention_mask)[:, -input_ids.shape[1] :],
            past_key_values=cache,
            use_cache=True,
        )
        return out.logits[:, -1], 0

    def continuation_logits(self, input_ids, attention_mask, start: int, settings=None):
        """Logits predicting ``input_ids[:, start:]`` (teacher forced), shape (batch, n, vocab).
        L2D integrates its flow for every scored position at once (``score_logits``)."""
        own = getattr(self.backbone, "score_logits", None)
        if own is not None:
            return own(input_ids, attention_mask, start, settings)
        logits = self(input_ids, attention_mask)
        return logits[:, start - 1 : -1]


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count real tokens only (left padding sits at position 0)."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
