"""The project's own tiny dLLM: a LLaDA-style bidirectional transformer small enough to pretrain
on a laptop CPU in minutes, so the whole harness runs offline.

RMSNorm, rotary positions, SwiGLU and PyTorch's scaled-dot-product attention without a causal
mask. Linear layers carry Llama's names (q/k/v/o_proj, gate/up/down_proj) so that target-module
defaults written for real models read naturally here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import MaskedLMOutput

from harness.models.family import Family


class TinyDLLMConfig(PretrainedConfig):
    model_type = "bench_tiny_dllm"

    def __init__(
        self,
        vocab_size: int = 100,
        hidden_size: int = 128,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        intermediate_size: int = 384,
        max_position_embeddings: int = 1024,
        rope_theta: float = 10000.0,
        rms_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        mask_token_id: int = 2,
        pad_token_id: int = 0,
        eos_token_id: int = 1,
        **kwargs,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.initializer_range = initializer_range
        self.mask_token_id = mask_token_id
        super().__init__(pad_token_id=pad_token_id, eos_token_id=eos_token_id, **kwargs)


def _rotary_tables(length: int, head_dim: int, theta: float, device, dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    angles = torch.outer(torch.arange(length, device=device).float(), inv_freq)
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


@dataclass
class TinyKVCache:
    """Keys (after rotary) and values of every layer over the whole sequence, for cached sampling.

    ``record`` forwards fill it; ``read`` forwards run only a window of positions and take the keys
    and values of every position outside that window from here (they are never overwritten, so a
    cache stays exactly what the recording forward computed until the sampler records a new one).
    """

    keys: list[torch.Tensor] = field(default_factory=list)  # per layer (batch, heads, length, dim)
    values: list[torch.Tensor] = field(default_factory=list)

    def select(self, rows: torch.Tensor) -> TinyKVCache:
        return TinyKVCache([k[rows] for k in self.keys], [v[rows] for v in self.values])

    def assign(self, rows: torch.Tensor, other: TinyKVCache) -> None:
        for mine, theirs in zip(self.keys + self.values, other.keys + other.values, strict=True):
            mine[rows] = theirs


@dataclass(frozen=True)
class CacheUse:
    """How one forward uses a :class:`TinyKVCache`: ``record`` (full sequence, fill the cache) or
    ``read`` (the input covers positions ``[start, start + input length)`` of the sequence)."""

    cache: TinyKVCache
    mode: str  # "record" | "read"
    start: int = 0


class TinyAttention(nn.Module):
    def __init__(self, config: TinyDLLMConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = d // self.num_heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin, key_mask, layer: int = 0, cache: CacheUse | None = None):
        b, n, d = x.shape
        shape = (b, n, self.num_heads, self.head_dim)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        if cache is not None and cache.mode == "record":
            cache.cache.keys.append(k)
            cache.cache.values.append(v)
        elif cache is not None:
            # The window's own keys/values are fresh; every other position comes from the cache.
            end = cache.start + n
            cached_k, cached_v = cache.cache.keys[layer], cache.cache.values[layer]
            k = torch.cat([cached_k[:, :, : cache.start], k, cached_k[:, :, end:]], dim=2)
            v = torch.cat([cached_v[:, :, : cache.start], v, cached_v[:, :, end:]], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, d))


class TinyMLP(nn.Module):
    def __init__(self, config: TinyDLLMConfig) -> None:
        super().__init__()
        d, h = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(d, h, bias=False)
        self.up_proj = nn.Linear(d, h, bias=False)
        self.down_proj = nn.Linear(h, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class TinyBlock(GradientCheckpointingLayer):
    def __init__(self, config: TinyDLLMConfig) -> None:
        super().__init__()
        self.input_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.self_attn = TinyAttention(config)
        self.post_attention_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp = TinyMLP(config)

    def forward(self, x, cos, sin, key_mask, layer: int = 0, cache: CacheUse | None = None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, key_mask, layer, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class TinyDLLM(PreTrainedModel):
    """Bidirectional masked-diffusion denoiser: logits for every position of a noisy sequence."""

    config_class = TinyDLLMConfig
    base_model_prefix = "tiny"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TinyBlock"]
    _supports_sdpa = True

    def __init__(self, config: TinyDLLMConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(TinyBlock(config) for _ in range(config.num_hidden_layers))
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
        elif isinstance(module, nn.RMSNorm):
            nn.init.ones_(module.weight)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        kv_cache: CacheUse | None = None,
        **_,
    ):
        """Logits for ``input_ids``. With ``kv_cache`` in ``read`` mode the input is a window of
        the sequence and ``attention_mask`` still covers the whole sequence."""
        x = self.embed_tokens(input_ids)
        n = input_ids.shape[1]
        start = kv_cache.start if kv_cache is not None and kv_cache.mode == "read" else 0
        head_dim = self.config.hidden_size // self.config.num_attention_heads
        cos, sin = _rotary_tables(start + n, head_dim, self.config.rope_theta, x.device, x.dtype)
        cos, sin = cos[start:], sin[start:]
        if kv_cache is not None and kv_cache.mode == "record":
            kv_cache.cache.keys.clear()
            kv_cache.cache.values.clear()
        # Padding keys are hidden from every query; with no padding SDPA takes its fast path.
        key_mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            key_mask = attention_mask.bool()[:, None, None, :]
        for index, layer in enumerate(self.layers):
            x = layer(x, cos, sin, key_mask, index, kv_cache)
        return MaskedLMOutput(logits=self.lm_head(self.norm(x)))


AutoConfig.register(TinyDLLMConfig.model_type, TinyDLLMConfig)
AutoModel.register(TinyDLLMConfig, TinyDLLM)


class TinyBackend:
    """The tiny dLLM's own block-wise KV cache path (:class:`TinyKVCache`), for the masked
    sampler's prefix and dual cache."""

    def record(self, dlm, x, level, attention):
        cache = TinyKVCache()
        return dlm(x, level, attention, kv_cache=CacheUse(cache, "record")), cache

    def read(self, dlm, window, start, level, attention, cache):
        return dlm(window, level, attention, kv_cache=CacheUse(cache, "read", start))

    def select(self, cache, rows):
        return cache.select(rows)

    def assign(self, cache, rows, other):
        cache.assign(rows, other)


def tiny_checkpointing(model: nn.Module) -> None:
    if hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable({"use_reentrant": False})


TINY_FAMILY = Family("tiny", enable_checkpointing=tiny_checkpointing, cache_backend=TinyBackend())
