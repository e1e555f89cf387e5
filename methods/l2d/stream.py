"""The L2D model: a frozen transformers causal LM (Llama / Qwen2 decoder layers) plus a flow stream.

The base runs untouched, once, and leaves behind what the flow reads: every layer's keys and
values (a transformers ``DynamicCache``, post-rotary, as the layers stored them), the pre-norm
last hidden state (a forward pre-hook on the final norm) and the rotary tables of the queried
positions (the base's own ``rotary_emb`` module). The flow stream then runs per layer with the
layer's own frozen modules plus L2D's LoRA deltas (``../shared/notes/l2d.md`` §1):

    n  = RMSNorm(h) * (w + d_a) + b_a                  (the layer's input norm, modulated)
    h += g_a * o_proj'(attend(rope(q_proj'(n)), K_main, V_main))   (causal, no flow-to-flow)
    n  = RMSNorm(h) * (w + d_m) + b_m                  (post-attention norm, modulated)
    h += g_m * mlp'(n)                                 (gate' / up' / down', the layer's act_fn)

where ``p'(x) = p(x) + s B A x`` over the frozen projection ``p``. The output is
``lm_head(norm(h_LM + (g(t) - g(0)) * h_flow))``: at t = 0 exactly the base.

Gradient checkpointing (``train.gradient_checkpointing``): the main path runs without gradients,
so it keeps nothing for backward; what the flow stream keeps per layer is recomputed instead
(``torch.utils.checkpoint``, non-reentrant, RNG state preserved so dropout draws repeat), the
same losses and gradients with one more flow forward per layer. :class:`L2DModel` answers
transformers' ``gradient_checkpointing_enable`` so the family's switch reaches it.

Only the decoder layers' public submodules and transformers' own ``apply_rotary_pos_emb`` of the
layer's modeling module are used; no modeling code is copied.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast

from harness.ground.errors import BenchError
from methods.l2d.config import L2DConfig
from methods.l2d.modules import (
    NULL_CLASS_DROPOUT,
    FlowInput,
    FlowLayer,
    OutputGate,
    TimeEmbedding,
    TokenSpace,
)


@dataclass
class MainState:
    """What the frozen main path leaves for the flow at n queried positions."""

    hidden: torch.Tensor  # (B, n, D) pre-norm last hidden state
    keys: list[torch.Tensor]  # per layer (B, kv_heads, L, head_dim), post-rotary
    values: list[torch.Tensor]
    cos: torch.Tensor  # (B, n, head_dim)
    sin: torch.Tensor
    mask: torch.Tensor  # (B, 1, n, L) bool: which main keys each flow query sees


def _layers(base: nn.Module):
    decoder = getattr(base, "model", None)
    layers = getattr(decoder, "layers", None)
    if layers is None or not hasattr(decoder, "norm") or not hasattr(decoder, "rotary_emb"):
        raise BenchError(
            f"L2D hooks into Llama / Qwen2 decoder layers; {type(base).__name__} has none"
        )
    if getattr(base.config, "use_sliding_window", False):
        raise BenchError("L2D does not support sliding-window attention (use_sliding_window)")
    return decoder, layers


def _rms(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    eps = getattr(norm, "variance_epsilon", None) or getattr(norm, "eps", 1e-6)
    x32 = x.float()
    return x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)


def _modulated(norm: nn.Module, h: torch.Tensor, offset, shift) -> torch.Tensor:
    return (_rms(h, norm) * (norm.weight.float() + offset) + shift).to(h.dtype)


class L2DModel(nn.Module):
    """The backbone a CausalLM gets from ``l2d``: base (frozen) + flow stream (trainable)."""

    flow_conditioned = True
    supports_gradient_checkpointing = True

    def __init__(self, base: nn.Module, config: L2DConfig, flow_time) -> None:
        super().__init__()
        self.base = base
        self.config = config
        self.flow_time = flow_time  # the CausalLM's FlowTime, set before every forward
        decoder, layers = _layers(base)
        hidden = base.config.hidden_size
        width = config.embed_dim
        self.time = TimeEmbedding(width, classes=2 if config.guided else 0)
        self.tokens = TokenSpace(hidden, config.rep_size)
        self.inputs = FlowInput(config.rep_size, width, hidden)
        self.gate = OutputGate(width, hidden)
        self.layers = nn.ModuleList(
            FlowLayer(self._shapes(layer), hidden, width, config) for layer in layers
        )
        self._rotary = sys.modules[type(layers[0].self_attn).__module__].apply_rotary_pos_emb
        self._captured: torch.Tensor | None = None
        self._checkpointing: dict | None = None  # torch.utils.checkpoint kwargs when enabled
        decoder.norm.register_forward_pre_hook(self._capture)
        for p in base.parameters():
            p.requires_grad_(False)

    @staticmethod
    def _shapes(layer) -> dict[str, tuple[int, int]]:
        mods = {
            "q_proj": layer.self_attn.q_proj,
            "o_proj": layer.self_attn.o_proj,
            "gate_proj": layer.mlp.gate_proj,
            "up_proj": layer.mlp.up_proj,
            "down_proj": layer.mlp.down_proj,
        }
        return {name: (m.in_features, m.out_features) for name, m in mods.items()}

    def _capture(self, _module, args) -> None:
        self._captured = args[0]

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None):
        """Recompute each flow layer in backward instead of keeping its activations (module
        doc); only in training mode, as transformers does."""
        self._checkpointing = {"use_reentrant": False, **(gradient_checkpointing_kwargs or {})}

    def gradient_checkpointing_disable(self) -> None:
        self._checkpointing = None

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self._checkpointing is not None

    def flow_modules(self) -> list[nn.Module]:
        return [self.time, self.tokens, self.inputs, self.gate, self.layers]

    # -- the main path --------------------------------------------------------------------
    def main(self, input_ids, attention_mask, cache, n_query: int | None, position_ids=None):
        """Run the base on ``input_ids`` (extending ``cache``); the state of the last
        ``n_query`` positions (None: all of them) and the base's own logits."""
        decoder, _ = _layers(self.base)
        if position_ids is None:
            full = torch.ones_like(input_ids) if attention_mask is None else attention_mask
            position_ids = (full.long().cumsum(1) - 1).clamp(min=0)[:, -input_ids.shape[1] :]
        with torch.no_grad():
            out = self.base(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=cache,
                use_cache=True,
            )
        n = input_ids.shape[1] if n_query is None else n_query
        hidden = self._captured[:, -n:]
        cos, sin = decoder.rotary_emb(hidden, position_ids[:, -n:])
        keys = [layer.keys for layer in cache.layers]
        values = [layer.values for layer in cache.layers]
        length = keys[0].shape[2]
        real = (
            torch.ones(input_ids.shape[0], length, dtype=torch.bool, device=input_ids.device)
            if attention_mask is None
            else attention_mask.bool()
        )
        query_at = torch.arange(length - n, length, device=input_ids.device)
        causal = torch.arange(length, device=input_ids.device)[None, :] <= query_at[:, None]
        mask = causal[None] & real[:, None, :]
        mask = mask | (torch.arange(length, device=mask.device)[None, :] == query_at[:, None])
        state = MainState(hidden, keys, values, cos, sin, mask[:, None])
        return state, out.logits

    # -- the flow stream ------------------------------------------------------------------
    def flow_logits(self, state: MainState, x: torch.Tensor, t: torch.Tensor, label=None):
        """Logits (B, n, V) at flow state ``x`` (B, n, R) and time ``t`` (B, n)."""
        decoder, layers = _layers(self.base)
        t = t.to(torch.float32)
        c = self.time(t, label)
        h = self.inputs(x, t, self.config.sigma).to(state.hidden.dtype)
        recompute = self._checkpointing is not None and self.training and torch.is_grad_enabled()
        for index, (layer, flow) in enumerate(zip(layers, self.layers, strict=True)):
            if recompute:
                h = checkpoint(
                    self._flow_layer, layer, flow, state, index, c, h, **self._checkpointing
                )
            else:
                h = self._flow_layer(layer, flow, state, index, c, h)
        g = self.gate(c) - self.gate(self.time(torch.zeros_like(t), label))
        combined = state.hidden + (g * h.float()).to(state.hidden.dtype)
        return self.base.lm_head(decoder.norm(combined))

    def _flow_layer(self, layer, flow: FlowLayer, state: MainState, index: int, c, h):
        """One decoder layer of the flow stream (module doc): modulated attention, then MLP."""
        mods = flow.modulation(c).float().chunk(6, dim=-1)
        h = h + (mods[2] * self._attend(layer, flow, state, index, mods, h)).to(h.dtype)
        n2 = _modulated(layer.post_attention_layernorm, h, mods[3], mods[4])
        return h + (mods[5] * self._mlp(layer, flow, n2)).to(h.dtype)

    def _attend(self, layer, flow: FlowLayer, state: MainState, index: int, mods, h):
        attn = layer.self_attn
        n1 = _modulated(layer.input_layernorm, h, mods[0], mods[1])
        b, n, _ = n1.shape
        q = (attn.q_proj(n1) + flow.delta("q_proj", n1)).view(b, n, -1, attn.head_dim)
        q, _ = self._rotary(q.transpose(1, 2), q.transpose(1, 2), state.cos, state.sin)
        k, v = state.keys[index], state.values[index]
        out = F.scaled_dot_product_attention(
            q.to(k.dtype),
            k,
            v,
            attn_mask=state.mask,
            scale=attn.scaling,
            enable_gqa=k.shape[1] != q.shape[1],
        )
        out = out.transpose(1, 2).reshape(b, n, -1)
        return attn.o_proj(out) + flow.delta("o_proj", out)

    @staticmethod
    def _mlp(layer, flow: FlowLayer, x):
        mlp = layer.mlp
        gate = mlp.gate_proj(x) + flow.delta("gate_proj", x)
        up = mlp.up_proj(x) + flow.delta("up_proj", x)
        inner = mlp.act_fn(gate) * up
        return mlp.down_proj(inner) + flow.delta("down_proj", inner)

    def represent(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.tokens(self.base.get_input_embeddings()(token_ids))

    def noise(self, shape, generator) -> torch.Tensor:
        device = self.tokens.proj.weight.device
        return torch.randn(shape, generator=generator).to(device)

    # -- training forward (teacher forced, per-position t) -------------------------------
    def forward(self, input_ids, attention_mask=None, position_ids=None, **_):
        """Logits of every position; position i's flow input is a noisy version of token i+1
        at the per-position time the CausalLM's ``flow_time`` holds (none: t = 0)."""
        cache = DynamicCache(config=self.base.config)
        state, _ = self.main(input_ids, attention_mask, cache, None, position_ids)
        b, n = input_ids.shape
        t = self.flow_time.value
        t = torch.zeros(b, n, device=input_ids.device) if t is None else t.to(input_ids.device)
        targets = torch.cat([input_ids[:, 1:], input_ids[:, -1:]], dim=1)
        x1 = self.represent(targets)
        generator = self.flow_time.generator
        eps = self.noise((b, n, self.config.rep_size), generator)
        x_t = (1 - t)[..., None] * self.config.sigma * eps + t[..., None] * x1
        label = None
        if self.config.guided:
            keep = torch.rand(b, generator=generator) >= NULL_CLASS_DROPOUT
            label = keep.long().to(input_ids.device) if self.training else torch.ones_like(keep)
            label = label.long().to(input_ids.device)
        return CausalLMOutputWithPast(logits=self.flow_logits(state, x_t, t, label))

    # -- inference: see methods.l2d.solve ---------------------------------------------------
    def next_token_logits(self, input_ids, attention_mask, cache, settings, stats=None):
        from methods.l2d.solve import next_token_logits

        return next_token_logits(self, input_ids, attention_mask, cache, settings)

    def score_logits(self, input_ids, attention_mask, start: int, settings):
        from methods.l2d.solve import score_logits

        return score_logits(self, input_ids, attention_mask, start, settings)
