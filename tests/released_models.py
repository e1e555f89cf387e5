"""Tiny random-weight LLaDA and Dream model folders built from the released model code.

The released ``modeling_*.py`` / ``configuration_*.py`` files live in
``../shared/fixtures/dllm-code/`` (third-party code, never copied into the project). These
builders write a folder laid out like a downloaded ``GSAI-ML/LLaDA-8B-*`` or
``Dream-org/Dream-v0-*-7B`` checkpoint into a temporary directory, so that bench loads it through
``trust_remote_code`` exactly as it would load the real model:

- ``config.json`` with the real ``model_type``, ``architectures``, ``auto_map`` and special ids,
  but tiny dimensions (hidden 16, 2 layers); the vocabulary keeps its real size (126464 / 152064)
  so that the special tokens sit at their real ids;
- ``generation_config.json`` (Dream's own ``from_pretrained`` reads it, as on the hub);
- the released ``.py`` files, copied into the folder (LLaDA's ``from configuration_llada`` import
  made relative, as on the hub); ``hub_mask=True`` deletes Dream's 2-D -> 4-D attention-mask
  conversion block, which gives the hub version of ``DreamModel.forward``;
- SUBSTITUTED: a byte-level tokenizer (``PreTrainedTokenizerFast``: one token per byte, filler
  tokens up to the special ids, then the special tokens at their real ids) instead of LLaDA's
  BPE tokenizer or Dream's Qwen2 ``DreamTokenizer``;
- SUBSTITUTED: random weights (seeded normal, std 0.02; norms at 1), written as safetensors by
  hand from the parameter names of the released code, not trained weights.

Usage::

    folder = build_llada(tmp_path)                 # -> Path of the model folder
    folder = build_dream(tmp_path, hub_mask=True)  # Dream with the hub's mask behaviour
    folder = build_llada(tmp_path, n_layers=1)     # any config.json field can be overridden

``FIXTURES`` is None when ``../shared`` is absent; ``require_fixtures()`` then skips the test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch

_DEFAULT_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "dllm-code"
_FIXTURES_PATH = Path(os.environ.get("BENCH_DLLM_FIXTURES", _DEFAULT_FIXTURES))
FIXTURES: Path | None = _FIXTURES_PATH if _FIXTURES_PATH.is_dir() else None
SKIP_REASON = (
    f"the released LLaDA/Dream code is not here ({_FIXTURES_PATH}: ../shared/fixtures/dllm-code "
    "is absent); these conformance tests need it"
)

# Special tokens at their real ids (LLaDA-8B-Instruct and Dream-v0 tokenizers).
LLADA_SPECIALS = {
    "<|startoftext|>": 126080,
    "<|endoftext|>": 126081,
    "<|mdm_mask|>": 126336,
    "<|start_header_id|>": 126346,
    "<|end_header_id|>": 126347,
    "<|eot_id|>": 126348,
}
LLADA_VOCAB = 126464
DREAM_SPECIALS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|beginoftext|>": 151665,
    "<|mask|>": 151666,
}
DREAM_VOCAB = 152064

LLADA_CHAT_TEMPLATE = (  # the LLaDA-8B-Instruct template: bos_token before the first message
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)

DREAM_MASK_BLOCK = re.compile(
    r"\n        if isinstance\(attention_mask, str\) and attention_mask == \"full\".*?"
    r"raise TypeError\(f\"Unsupported attention_mask type: \{type\(attention_mask\)\}\"\)\n",
    re.S,
)


# The device the released-code tests run on: "cpu" (fp32) by default; BENCH_TEST_DEVICE=cuda runs
# them in bf16 with SDPA, as bench evaluates on a GPU (benchmarks/gpu_acceptance.py).
TEST_DEVICE = os.environ.get("BENCH_TEST_DEVICE", "cpu")


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    """``assert_close`` tolerances for a cached forward against the uncached one: fp32 agrees
    to rounding, bf16 (a GPU run) to its 8-bit mantissa."""
    if dtype == torch.bfloat16:
        return {"rtol": 2e-2, "atol": 2e-2}
    return {"rtol": 1e-5, "atol": 1e-5}


def require_fixtures() -> Path:
    """The fixture folder, or a pytest skip that says why (only when ../shared is absent)."""
    import pytest

    if FIXTURES is None:
        pytest.skip(SKIP_REASON)
    return FIXTURES


def build_llada(
    tmp_path: Path, chat_template: bool = False, seed: int = 0, weights: bool = True, **overrides
) -> Path:
    """A tiny LLaDA folder (2 layers, d_model 16, 2 heads) under ``tmp_path / "llada"``;
    ``weights=False`` writes no weight file (the model is then built from the config alone)."""
    fixtures = require_fixtures() / "llada"
    folder = Path(tmp_path) / "llada"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(fixtures / "configuration_llada.py", folder)
    code = (fixtures / "modeling_llada.py").read_text()
    code, n = re.subn(
        r"^from configuration_llada import", "from .configuration_llada import", code, flags=re.M
    )
    assert n == 1, "the fixture's configuration import changed"
    (folder / "modeling_llada.py").write_text(code)
    config = {
        "activation_type": "silu",
        "alibi": False,
        "architectures": ["LLaDAModelLM"],
        "attention_dropout": 0.0,
        "attention_layer_norm": False,
        "auto_map": {
            "AutoConfig": "configuration_llada.LLaDAConfig",
            "AutoModel": "modeling_llada.LLaDAModelLM",
            "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
        },
        "block_group_size": 1,
        "block_type": "llama",
        "d_model": 16,
        "embedding_dropout": 0.0,
        "embedding_size": LLADA_VOCAB,
        "eos_token_id": 126081,
        "flash_attention": False,
        "include_bias": False,
        "include_qkv_bias": False,
        "init_device": "meta",
        "init_fn": "mitchell",
        "init_std": 0.02,
        "input_emb_norm": False,
        "layer_norm_type": "rms",
        "layer_norm_with_affine": True,
        "mask_token_id": 126336,
        "max_sequence_length": 4096,
        "mlp_hidden_size": 32,
        "model_type": "llada",
        "n_heads": 2,
        "n_kv_heads": 2,
        "n_layers": 2,
        "pad_token_id": 126081,
        "residual_dropout": 0.0,
        "rms_norm_eps": 1e-05,
        "rope": True,
        "rope_full_precision": True,
        "rope_theta": 500000.0,
        "scale_logits": False,
        "use_cache": False,
        "vocab_size": LLADA_VOCAB,
        "weight_tying": False,
        **overrides,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    if weights:
        _write_weights(folder, _llada_shapes(config), seed)
    _write_tokenizer(
        folder,
        LLADA_SPECIALS,
        bos="<|startoftext|>",
        eos="<|endoftext|>",
        pad="<|endoftext|>",
        mask=None,  # the real LLaDA tokenizer sets no mask token
        chat_template=LLADA_CHAT_TEMPLATE if chat_template else None,
    )
    return folder


def build_dream(
    tmp_path: Path, hub_mask: bool = False, seed: int = 0, weights: bool = True, **overrides
) -> Path:
    """A tiny Dream folder (2 layers, hidden 16, 2 heads, 1 KV head) under ``tmp_path``;
    ``weights=False`` writes no weight file.

    ``hub_mask=True``: delete the 2-D -> 4-D mask conversion of ``DreamModel.forward`` (the hub
    and Fast-dLLM version, which hands the mask to SDPA untouched).
    """
    fixtures = require_fixtures() / "dream"
    folder = Path(tmp_path) / ("dream-hub" if hub_mask else "dream")
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("configuration_dream.py", "generation_utils.py", "tokenization_dream.py"):
        shutil.copy(fixtures / name, folder)
    code = (fixtures / "modeling_dream.py").read_text()
    if hub_mask:
        code, n = DREAM_MASK_BLOCK.subn("\n", code)
        assert n == 1, "the fixture's mask conversion block changed"
    (folder / "modeling_dream.py").write_text(code)
    config = {
        "architectures": ["DreamModel"],
        "attention_dropout": 0.0,
        "auto_map": {
            "AutoConfig": "configuration_dream.DreamConfig",
            "AutoModel": "modeling_dream.DreamModel",
        },
        "bos_token_id": 151643,
        "eos_token_id": 151643,
        "hidden_act": "silu",
        "hidden_size": 16,
        "initializer_range": 0.02,
        "intermediate_size": 32,
        "mask_token_id": 151666,
        "max_position_embeddings": 131072,
        "max_window_layers": 2,
        "model_type": "Dream",
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "num_key_value_heads": 1,
        "pad_token_id": 151643,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": False,
        "use_sliding_window": False,
        "vocab_size": DREAM_VOCAB,
        **overrides,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    generation = {"bos_token_id": 151643, "eos_token_id": 151643, "pad_token_id": 151643}
    generation["mask_token_id"] = 151666  # the hub folder ships one; Dream's loader reads it
    (folder / "generation_config.json").write_text(json.dumps(generation, indent=2))
    if weights:
        _write_weights(folder, _dream_shapes(config), seed)
    _write_tokenizer(
        folder,
        DREAM_SPECIALS,
        bos="<|beginoftext|>",
        eos="<|endoftext|>",
        pad="<|endoftext|>",
        mask="<|mask|>",
        chat_template=None,
    )
    return folder


def _llada_shapes(c: dict) -> dict[str, tuple[int, ...]]:
    d, hidden, vocab = c["d_model"], c["mlp_hidden_size"], c["embedding_size"]
    kv = c["n_kv_heads"] * (d // c["n_heads"])
    prefix = "model.transformer"
    shapes = {f"{prefix}.wte.weight": (vocab, d), f"{prefix}.ln_f.weight": (d,)}
    if not c["weight_tying"]:
        shapes[f"{prefix}.ff_out.weight"] = (vocab, d)
    for i in range(c["n_layers"]):
        block = f"{prefix}.blocks.{i}"
        shapes.update(
            {
                f"{block}.attn_norm.weight": (d,),
                f"{block}.ff_norm.weight": (d,),
                f"{block}.q_proj.weight": (d, d),
                f"{block}.k_proj.weight": (kv, d),
                f"{block}.v_proj.weight": (kv, d),
                f"{block}.attn_out.weight": (d, d),
                f"{block}.ff_proj.weight": (hidden, d),
                f"{block}.up_proj.weight": (hidden, d),
                f"{block}.ff_out.weight": (d, hidden),
            }
        )
        if c.get("attention_layer_norm") and c.get("attention_layer_norm_with_affine", True):
            shapes.update({f"{block}.q_norm.weight": (d,), f"{block}.k_norm.weight": (kv,)})
    return shapes


def _dream_shapes(c: dict) -> dict[str, tuple[int, ...]]:
    d, inter, vocab = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    kv = c["num_key_value_heads"] * (d // c["num_attention_heads"])
    shapes = {"model.embed_tokens.weight": (vocab, d), "model.norm.weight": (d,)}
    shapes["lm_head.weight"] = (vocab, d)
    for i in range(c["num_hidden_layers"]):
        layer = f"model.layers.{i}"
        shapes.update(
            {
                f"{layer}.input_layernorm.weight": (d,),
                f"{layer}.post_attention_layernorm.weight": (d,),
                f"{layer}.self_attn.q_proj.weight": (d, d),
                f"{layer}.self_attn.q_proj.bias": (d,),
                f"{layer}.self_attn.k_proj.weight": (kv, d),
                f"{layer}.self_attn.k_proj.bias": (kv,),
                f"{layer}.self_attn.v_proj.weight": (kv, d),
                f"{layer}.self_attn.v_proj.bias": (kv,),
                f"{layer}.self_attn.o_proj.weight": (d, d),
                f"{layer}.mlp.gate_proj.weight": (inter, d),
                f"{layer}.mlp.up_proj.weight": (inter, d),
                f"{layer}.mlp.down_proj.weight": (d, inter),
            }
        )
    return shapes


def _write_weights(folder: Path, shapes: dict[str, tuple[int, ...]], seed: int) -> None:
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in sorted(shapes.items()):
        if len(shape) == 1 and "norm" in name:
            tensors[name] = torch.ones(shape)
        else:
            tensors[name] = torch.randn(shape, generator=generator) * 0.02
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _byte_level_chars() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what a ByteLevel pre-tokenizer emits)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


def _write_tokenizer(
    folder: Path,
    specials: dict[str, int],
    bos: str,
    eos: str,
    pad: str,
    mask: str | None,
    chat_template: str | None,
) -> None:
    """Byte-level stand-in tokenizer: ids 0-255 are bytes, then fillers, then the real specials."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: byte for byte, ch in _byte_level_chars().items()}
    by_id = {i: tok for tok, i in specials.items()}
    for i in range(len(vocab), max(specials.values()) + 1):
        vocab[by_id.get(i, f"<|filler_{i}|>")] = i
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    kwargs = {"bos_token": bos, "eos_token": eos, "pad_token": pad}
    if mask is not None:
        kwargs["mask_token"] = mask
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, **kwargs)
    if chat_template is not None:
        tok.chat_template = chat_template
    tok.save_pretrained(folder)
