"""A tiny random-weight DiffusionGemma folder (transformers' built-in code) for the tests.

Text: 2 layers (one sliding, one full attention), hidden 32, 4 experts (top 2), canvas 8. The
vision tower (always built by the model) is the smallest Gemma 4 vision config. Tokenizer: the
byte-level stand-in of :mod:`tests.released_models` with Gemma's specials after the bytes
(pad 256, eos 257, bos 258) and no mask token, as DiffusionGemma has none. The folder
holds a generation config (sampler settings), as the released checkpoint does.

Two more folders (:func:`build_variant`) differ from it where bench once depended on it:

- ``plain-heads``: every layer one head width and key/value head count (``per_layer_config={}``,
  no global overrides), 4 query heads over 2 key/value heads, hidden 64, vocabulary 512, a
  window of 64, a canvas of 32, Gemma's specials at 0/1/2 (pad, eos, bos) before the bytes, and
  a generation config without stopping thresholds;
- ``wide-global``: three layers (two sliding, one full), 4 query heads over 1 key/value head of
  width 8, a full-attention head of width 32 with 2 key/value heads, a window of 4 (shorter than
  the prompts, so it masks), 2 experts (top 1), a canvas of 16, and a generation config without
  ``entropy_bound`` or ``t_min``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tests.released_models import _byte_level_chars, _write_tokenizer

SPECIALS = {"<pad>": 256, "<eos>": 257, "<bos>": 258}
VOCAB = 264  # the model's logits: a little past the tokenizer, like real checkpoints
CANVAS = 8
TINY_VISION = dict(
    model_type="gemma4_vision",
    hidden_size=16,
    intermediate_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=8,
    global_head_dim=8,
)


def tiny_config(**overrides):
    from transformers import DiffusionGemmaConfig

    text = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        global_head_dim=16,
        num_global_key_value_heads=1,
        sliding_window=16,
        layer_types=["sliding_attention", "full_attention"],
        num_experts=4,
        top_k_experts=2,
        moe_intermediate_size=16,
        pad_token_id=256,
        eos_token_id=257,
        bos_token_id=258,
        max_position_embeddings=512,
    )
    return DiffusionGemmaConfig(
        text_config=text, vision_config=dict(TINY_VISION), canvas_length=CANVAS, **overrides
    )


def tiny_generation_config():
    """Sampler settings saved with the folder, as a released checkpoint ships its own."""
    from transformers.models.diffusion_gemma import generation_diffusion_gemma as gen

    return gen.DiffusionGemmaGenerationConfig(
        max_denoising_steps=3,
        sampler_config=gen.EntropyBoundSamplerConfig(entropy_bound=0.5),
        t_min=0.1,
        t_max=1.0,
        stability_threshold=2,
        confidence_threshold=0.01,
        eos_token_id=257,
        pad_token_id=256,
        bos_token_id=258,
    )


def build_diffusion_gemma(tmp_path: Path, seed: int = 0) -> Path:
    from transformers import DiffusionGemmaForBlockDiffusion

    folder = tmp_path / "diffusion-gemma-tiny"
    torch.manual_seed(seed)
    model = DiffusionGemmaForBlockDiffusion(tiny_config())
    model.generation_config = tiny_generation_config()
    model.save_pretrained(folder)
    _write_tokenizer(folder, SPECIALS, "<bos>", "<eos>", "<pad>", None, None)
    return folder


PLAIN_HEADS = "plain-heads"
WIDE_GLOBAL = "wide-global"
VARIANTS = (PLAIN_HEADS, WIDE_GLOBAL)
LEADING_SPECIALS = {"<pad>": 0, "<eos>": 1, "<bos>": 2}


def plain_heads_config():
    from transformers import DiffusionGemmaConfig, DiffusionGemmaTextConfig

    text = DiffusionGemmaTextConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        layer_types=["sliding_attention", "full_attention"],
        per_layer_config={},
        sliding_window=64,
        max_position_embeddings=1024,
        num_experts=4,
        top_k_experts=2,
        moe_intermediate_size=32,
    )
    vision = dict(
        model_type="gemma4_vision",
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        head_dim=16,
    )
    return DiffusionGemmaConfig(text_config=text, vision_config=vision, canvas_length=32)


def wide_global_config():
    from transformers import DiffusionGemmaConfig

    text = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=8,
        global_head_dim=32,
        num_global_key_value_heads=2,
        sliding_window=4,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        num_experts=2,
        top_k_experts=1,
        moe_intermediate_size=8,
        pad_token_id=256,
        eos_token_id=257,
        bos_token_id=258,
        max_position_embeddings=256,
    )
    return DiffusionGemmaConfig(text_config=text, vision_config=dict(TINY_VISION), canvas_length=16)


def _generation_config(variant: str):
    from transformers.models.diffusion_gemma import generation_diffusion_gemma as gen

    if variant == PLAIN_HEADS:
        return gen.DiffusionGemmaGenerationConfig(
            max_denoising_steps=4,
            sampler_config=gen.EntropyBoundSamplerConfig(entropy_bound=0.5),
            t_min=0.1,
            t_max=1.0,
            eos_token_id=1,
            pad_token_id=0,
            bos_token_id=2,
        )
    return gen.DiffusionGemmaGenerationConfig(
        max_denoising_steps=3,
        t_max=1.0,
        stability_threshold=1,
        confidence_threshold=0.01,
        eos_token_id=257,
        pad_token_id=256,
        bos_token_id=258,
    )


def _write_leading_specials_tokenizer(folder: Path) -> None:
    """Byte-level, Gemma's order: pad, eos, bos at 0, 1, 2, then the 256 bytes."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = dict(LEADING_SPECIALS)
    vocab.update({ch: len(LEADING_SPECIALS) + b for b, ch in _byte_level_chars().items()})
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    specials = [AddedToken(t, special=True, normalized=False) for t in LEADING_SPECIALS]
    backend.add_special_tokens(specials)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )
    tok.save_pretrained(folder)


def build_variant(tmp_path: Path, variant: str, seed: int = 0) -> Path:
    """One of :data:`VARIANTS`, built with transformers' own classes and saved."""
    from transformers import DiffusionGemmaForBlockDiffusion

    folder = tmp_path / f"diffusion-gemma-{variant}"
    torch.manual_seed(seed)
    config = plain_heads_config() if variant == PLAIN_HEADS else wide_global_config()
    model = DiffusionGemmaForBlockDiffusion(config)
    model.generation_config = _generation_config(variant)
    model.save_pretrained(folder)
    if variant == PLAIN_HEADS:
        _write_leading_specials_tokenizer(folder)
    else:
        _write_tokenizer(folder, SPECIALS, "<bos>", "<eos>", "<pad>", None, None)
    return folder


# What the DiffusionGemma tests train: every method, their small settings, four pairs, two steps.
METHODS = ["lora", "dora", "static_core", "nara", "binned_lora"]
FIELDS = {"nara": {"hidden_sizes": (8, 8)}, "binned_lora": {"bins": 4}}
PAIRS = [("Q: 1+2=", " 3"), ("Q: 20+22=", " 42"), ("Say hi.", " hi"), ("Q: 5-1=", " 4")]


def train_config(**overrides):
    from harness.config.cell import TrainConfig

    fields = dict(
        steps=2,
        batch_size=2,
        grad_accum=1,
        lr=0.05,
        warmup_ratio=0.0,
        val_examples=0,
        max_length=64,
    )
    return TrainConfig(**{**fields, **overrides})


def encoded_pairs(dlm) -> list[tuple[list[int], list[int]]]:
    tok = dlm.tokenizer
    return [(tok.encode_prompt(p), tok.encode(a)) for p, a in PAIRS]


def probe(dlm, first_prompt: str = "Q: 1+2="):
    """Two left-padded prompts, a fixed random canvas of the model's length and two noise
    levels: the inputs of ``canvas_logits`` that the tests compare models on."""
    from harness.models.diffusion_gemma import base_model

    tok = dlm.tokenizer
    prompts = [tok.encode_prompt(first_prompt), tok.encode_prompt("ab")]
    width = max(map(len, prompts))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
    attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    config = base_model(dlm.backbone).config
    vocab, length = config.text_config.vocab_size, config.canvas_length
    canvas = torch.randint(0, vocab, (2, length), generator=torch.Generator().manual_seed(3))
    return ids, attention, canvas, torch.tensor([0.25, 0.875])


def probe_logits(dlm, first_prompt: str = "Q: 1+2="):
    from harness.processes.uniform.forward import canvas_logits

    with torch.no_grad():
        return canvas_logits(dlm, *probe(dlm, first_prompt))
