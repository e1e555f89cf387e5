"""A tiny random-weight DiffusionGemma folder (transformers' built-in code) for the tests.

Text: 2 layers (one sliding, one full attention), hidden 32, 4 experts (top 2), canvas 8. The
vision tower (always built by the model) is the smallest Gemma 4 vision config. Tokenizer: the
byte-level stand-in of :mod:`tests.released_models` with Gemma's specials after the bytes
(pad 256, eos 257, bos 258) and no mask token, as DiffusionGemma has none. The folder
holds a generation config (sampler settings), as the released checkpoint does.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tests.released_models import _write_tokenizer

SPECIALS = {"<pad>": 256, "<eos>": 257, "<bos>": 258}
VOCAB = 264  # the model's logits: a little past the tokenizer, like real checkpoints
CANVAS = 8


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
    vision = dict(
        model_type="gemma4_vision",
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        global_head_dim=8,
    )
    return DiffusionGemmaConfig(
        text_config=text, vision_config=vision, canvas_length=CANVAS, **overrides
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
