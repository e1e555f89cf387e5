"""Cache backends for the released LLaDA and Dream code, built around their attention modules.

Their files stay untouched: for the duration of one forward the backend wraps each attention
module (an instance attribute that shadows the class's method, removed afterwards), so peft
layers inside the q/k/v projections and noise-aware adapters run exactly as without a cache.

- LLaDA: ``LLaDABlock.attention(q, k, v, attention_bias)`` receives the projected q/k/v and
  applies rotary inside, assigning positions by key index and taking the queries to be the LAST
  ones, and q/k/v of one length, with earlier keys only through ``layer_past``. The cache keeps
  the projected keys and values BEFORE rotary. A window forward hands every cached position (the
  prefix, then the dual window's suffix) as ``layer_past`` and its own q/k/v last, so only the
  window's queries run (attention and output projection); for the dual window the rotary tables
  (``get_rotary_embedding``, shadowed for the forward) and the padding bias LLaDA builds from the
  full-length 2-D mask are put in that same key order, so every key keeps its own position.
- Dream: ``DreamAttention.forward`` hands its rotated keys and values to
  ``past_key_value.update(k, v, layer_idx, ...)`` and attends to what that returns; the backend
  passes its own object there, which records (returns them unchanged) or splices the window's
  keys into the cached ones (keys AFTER rotary, like the tiny model). A window forward gets its
  own position ids, and each attention gets the rows of the family's 4-D mask
  (``dream_inputs``) for its queries. Dream predicts position
  ``i`` from hidden state ``i - 1``, so a window ``[lo, hi)`` runs ``[lo - 1, hi)``: the token at
  ``lo - 1`` (prompt or a finished block, unchanged since the cache was recorded) is kept in the
  cache for that.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn

from harness.ground.errors import BenchError

_ABSENT = object()


@dataclass
class LayerKV:
    """Per layer keys and values over the whole sequence (batch first), and the recorded ids."""

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    ids: torch.Tensor | None = None

    def put(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> None:
        """Record one layer's keys and values in its slot (the layer's own index)."""
        while len(self.keys) <= layer:
            self.keys.append(None)
            self.values.append(None)
        self.keys[layer], self.values[layer] = key, value

    def select(self, rows: torch.Tensor) -> LayerKV:
        return LayerKV([k[rows] for k in self.keys], [v[rows] for v in self.values], self.ids[rows])

    def assign(self, rows: torch.Tensor, other: LayerKV) -> None:
        for mine, theirs in zip(self.keys + self.values, other.keys + other.values, strict=True):
            mine[rows] = theirs
        self.ids[rows] = other.ids


@contextlib.contextmanager
def _wrapped(modules: list[nn.Module], name: str, make):
    """Shadow ``module.<name>`` with ``make(index, original)`` on every module, for one forward.

    An instance attribute already there (accelerate's device hooks replace ``forward`` that way)
    is wrapped like the class's method and put back afterwards."""
    saved = [module.__dict__.get(name, _ABSENT) for module in modules]
    try:
        for index, module in enumerate(modules):
            setattr(module, name, make(index, getattr(module, name)))
        yield
    finally:
        for module, before in zip(modules, saved, strict=True):
            if before is _ABSENT:
                module.__dict__.pop(name, None)
            else:
                module.__dict__[name] = before


def _found(modules: list[nn.Module], what: str, dlm) -> list[nn.Module]:
    if not modules:
        raise BenchError(f"{dlm.info.name}: no {what} found; the cache cannot wrap this model")
    return modules


def _checked(cache: LayerKV, layers: int, dlm) -> LayerKV:
    recorded = sum(k is not None for k in cache.keys)
    if recorded != layers or len(cache.keys) != layers:
        raise BenchError(
            f"{dlm.info.name}: the cache recorded {recorded} of {layers} attention layers"
        )
    return cache


def _heads(block: nn.Module, t: torch.Tensor, is_key: bool = False) -> torch.Tensor:
    """Projected keys/values ``(B, T, C)`` as LLaDA's ``attention`` holds its past ones:
    key-normed when the block norms keys, then ``(B, kv_heads, T, head_dim)``."""
    config = block.config
    if is_key and block.q_norm is not None and block.k_norm is not None:
        t = block.k_norm(t).to(dtype=t.dtype)
    head_dim = config.d_model // config.n_heads
    return t.view(t.shape[0], t.shape[1], config.effective_n_kv_heads, head_dim).transpose(1, 2)


class LLaDABackend:
    """LLaDA's blocks (``LLaDALlamaBlock`` / ``LLaDASequentialBlock``): wraps ``attention``."""

    @staticmethod
    def blocks(dlm) -> list[nn.Module]:
        found = [
            m
            for m in dlm.modules()
            if any(k.__name__ == "LLaDABlock" for k in type(m).__mro__) and hasattr(m, "attention")
        ]
        return _found(found, "LLaDABlock", dlm)

    def record(self, dlm, x, level, attention):
        blocks, cache = self.blocks(dlm), LayerKV(ids=x.clone())

        def make(index, original):
            def attention_recording(q, k, v, attention_bias=None, layer_past=None, use_cache=False):
                cache.put(index, k, v)
                return original(q, k, v, attention_bias, layer_past=layer_past, use_cache=use_cache)

            return attention_recording

        with _wrapped(blocks, "attention", make):
            logits = dlm(x, level, attention)
        return logits, _checked(cache, len(blocks), dlm)

    def read(self, dlm, window, start, level, attention, cache):
        blocks = self.blocks(dlm)
        length, end = attention.shape[1], start + window.shape[1]
        # Keys in the order [before the window, after it, the window]: LLaDA's attention takes
        # its queries to be the last keys, and attention sums over keys in any order as long as
        # each key keeps its own rotary position and bias column. So the cached positions all go
        # in as ``layer_past``, the queries are the window's alone, and the rotary tables and
        # the bias follow the same order.
        order = torch.cat(
            [torch.arange(start), torch.arange(end, length), torch.arange(start, end)]
        ).to(window.device)
        moved = end < length  # the dual window: a cached suffix after it

        def make(index, original):
            block = blocks[index]

            def attention_reading(q, k, v, attention_bias=None, layer_past=None, use_cache=False):
                if attention_bias is not None and tuple(attention_bias.shape[-2:]) != (length,) * 2:
                    raise BenchError(
                        f"{dlm.info.name}: LLaDA built a {tuple(attention_bias.shape)} attention "
                        f"bias for a cached window; the cache needs one over all {length} positions"
                    )
                keys, values = cache.keys[index], cache.values[index]
                past_k = torch.cat([keys[:, :start], keys[:, end:]], dim=1)
                past_v = torch.cat([values[:, :start], values[:, end:]], dim=1)
                past = (_heads(block, past_k, True), _heads(block, past_v))
                if moved and attention_bias is not None:
                    attention_bias = attention_bias[:, :, order][:, :, :, order]
                return original(q, k, v, attention_bias, layer_past=past, use_cache=False)

            return attention_reading

        def make_rotary(index, original):
            def tables_in_key_order(seq_len, device):
                pos_sin, pos_cos = original(seq_len, device)
                return pos_sin[:, :, order], pos_cos[:, :, order]

            return tables_in_key_order

        rotaries = [b.rotary_emb for b in blocks if moved and getattr(b, "rotary_emb", None)]
        with (
            _wrapped(blocks, "attention", make),
            _wrapped(rotaries, "get_rotary_embedding", make_rotary),
        ):
            return dlm(window, level, attention)

    def select(self, cache, rows):
        return cache.select(rows)

    def assign(self, cache, rows, other):
        cache.assign(rows, other)


class _DreamKV:
    """What Dream's attention calls ``past_key_value``: records, or splices a window in."""

    def __init__(self, cache: LayerKV, start: int | None = None, end: int | None = None) -> None:
        self.cache, self.start, self.end = cache, start, end

    def update(self, key_states, value_states, layer_idx, cache_kwargs=None):
        if self.start is None:
            self.cache.put(layer_idx, key_states, value_states)
            return key_states, value_states
        keys, values = self.cache.keys[layer_idx], self.cache.values[layer_idx]
        s, e = self.start, self.end
        k = torch.cat([keys[:, :, :s], key_states, keys[:, :, e:]], dim=2)
        v = torch.cat([values[:, :, :s], value_states, values[:, :, e:]], dim=2)
        return k, v


class DreamBackend:
    """Dream's ``DreamAttention`` / ``DreamSdpaAttention``: injects ``past_key_value``."""

    @staticmethod
    def attentions(dlm) -> list[nn.Module]:
        found = [
            m for m in dlm.modules() if any(k.__name__ == "DreamAttention" for k in type(m).__mro__)
        ]
        return _found(sorted(found, key=lambda m: m.layer_idx), "DreamAttention", dlm)

    @staticmethod
    def _injecting(modules, kv: _DreamKV, mask: torch.Tensor | None = None):
        """Every attention gets ``kv`` as its past; a window's queries also get ``mask`` (their
        rows of the 4-D mask, over all keys), which the model's own forward never sees."""

        def make(index, original):
            def forward(*args, **kwargs):
                kwargs["past_key_value"] = kv
                if mask is not None:
                    kwargs["attention_mask"] = mask
                return original(*args, **kwargs)

            return forward

        return _wrapped(modules, "forward", make)

    def record(self, dlm, x, level, attention):
        modules, cache = self.attentions(dlm), LayerKV(ids=x.clone())
        with self._injecting(modules, _DreamKV(cache)):
            logits = dlm(x, level, attention)
        return logits, _checked(cache, len(modules), dlm)

    def read(self, dlm, window, start, level, attention, cache):
        if start < 1:
            raise BenchError(f"{dlm.info.name}: a cached window cannot start at position 0")
        lo, end = start - 1, start + window.shape[1]
        ids = torch.cat([cache.ids[:, lo:start], window], dim=1)
        full = dlm.family.model_inputs(torch.zeros_like(attention), attention)
        if "position_ids" in full:
            mask, positions = full["attention_mask"][:, :, lo:end], full["position_ids"][:, lo:end]
        else:
            mask = None
            positions = torch.arange(lo, end, device=window.device).expand(window.shape[0], -1)
        with self._injecting(self.attentions(dlm), _DreamKV(cache, lo, end), mask):
            logits = dlm(ids, level, None, position_ids=positions)
        return logits[:, 1:]

    def select(self, cache, rows):
        return cache.select(rows)

    def assign(self, cache, rows, other):
        cache.assign(rows, other)
