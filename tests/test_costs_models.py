"""Costs of the causal bases (Llama / Qwen2, L2D) and of DiffusionGemma from their configs: the
counted parameters equal the built models' (base and every method's trainable ones), the
published alias sizes, and the dry run prints them with a time and memory estimate."""

from __future__ import annotations

import pytest
import torch

from harness.costs.architecture import KNOWN, adapter_params, architecture_for
from harness.costs.devices import device_kind
from harness.costs.estimate import cell_cost, flow_evals_per_token
from harness.run.grid import make_grid
from methods.registry import get_method
from tests.causal_models import make_causal_lm
from tests.test_runner import run_cli

CAUSAL_METHODS = {
    "lora": {"rank": 4},
    "dora": {"rank": 4},
    "l2d": {"rank": 4, "rep_size": 8, "embed_dim": 16},
    "l2d-guided": {"rank": 4, "rep_size": 8, "embed_dim": 16, "guidance": 2.0},
}


def _trainable(model, method: str, fields: dict) -> tuple[int, int]:
    """(counted from the architecture, counted on the model after applying the method)."""
    impl = get_method(method.split("-")[0])
    config = impl.config_cls.from_dict(fields)
    return config, impl.apply(model, config).parameter_counts().trainable


@pytest.mark.parametrize("kind", ["tiny-ar", "llama", "qwen2"])
def test_causal_parameter_counts_equal_the_built_models(kind, tmp_path):
    lm = make_causal_lm(kind)
    lm.backbone.save_pretrained(tmp_path)
    arch = architecture_for(str(tmp_path))
    assert arch.family == ("llama" if kind == "tiny-ar" else kind)  # no char tokenizer saved
    assert arch.total_params == sum(p.numel() for p in lm.backbone.parameters())
    for method, fields in CAUSAL_METHODS.items():
        config, trainable = _trainable(make_causal_lm(kind), method, fields)
        assert adapter_params(arch, method.split("-")[0], config) == trainable, method


def _diffusion_gemma_folder(tmp_path):
    """The tests' tiny DiffusionGemma, but with full-attention layers whose head width and kv
    heads differ from the sliding ones (as the released checkpoint's do)."""
    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

    from tests.diffusion_gemma_models import SPECIALS, tiny_config
    from tests.released_models import _write_tokenizer

    small = tiny_config()
    text = small.text_config.to_dict()
    text.pop("per_layer_config", None)
    text.update(
        global_head_dim=24, num_global_key_value_heads=2, num_hidden_layers=3,
        layer_types=["sliding_attention", "full_attention", "full_attention"],
    )  # fmt: skip
    config = DiffusionGemmaConfig(
        text_config=text, vision_config=small.vision_config.to_dict(), canvas_length=8
    )
    torch.manual_seed(0)
    folder = tmp_path / "dg"
    DiffusionGemmaForBlockDiffusion(config).save_pretrained(folder)
    _write_tokenizer(folder, SPECIALS, "<bos>", "<eos>", "<pad>", None, None)
    return folder


def test_diffusion_gemma_counts_from_its_nested_text_config(tmp_path):
    from harness.models.loader import load_model

    folder = _diffusion_gemma_folder(tmp_path)
    arch = architecture_for(str(folder))
    assert (arch.family, arch.layers, arch.hidden, arch.vocab) == ("diffusion_gemma", 3, 32, 264)
    assert (arch.global_layers, arch.global_head_size, arch.global_kv_heads) == (2, 24, 2)
    dlm = load_model(str(folder), "cpu")
    text = sum(p.numel() for n, p in dlm.backbone.named_parameters() if "vision" not in n)
    assert arch.total_params == text
    for method in ("lora", "dora", "static_core", "nara", "binned_lora"):
        config, trainable = _trainable(load_model(str(folder), "cpu"), method, {"rank": 4})
        assert adapter_params(arch, method, config) == trainable, method


def test_known_causal_aliases_have_the_published_sizes():
    # the model cards' parameter counts
    assert KNOWN["llama-3.2-1b-instruct"].total_params == 1_235_814_400
    assert KNOWN["llama-3.1-8b-instruct"].total_params == 8_030_261_248
    assert KNOWN["qwen2.5-1.5b-instruct"].total_params == 1_543_714_304
    assert KNOWN["qwen2.5-7b-instruct"].total_params == 7_615_616_512


def _cell(model: str, method: str, **sets):
    spec = {"model": model, "methods": [method], "tasks": ["gsm8k"], "seeds": [0]}
    spec["set"] = {"train.data": ["task"], **{k: [v] for k, v in sets.items()}}
    (cell,) = make_grid(spec).cells()
    return cell


def test_causal_evaluation_is_costed_as_cached_decoding_and_l2d_adds_its_flow():
    h100, arch = device_kind("H100"), KNOWN["llama-3.1-8b-instruct"]
    lora = cell_cost(_cell("llama-3.1-8b-instruct", "lora"), [], h100, arch)
    # one forward per prompt and generated token (prompt 128 + 256), not one per sampling step
    assert lora.eval_tokens == 1319 * (128 + 256)
    l2d_cell = _cell("llama-3.1-8b-instruct", "l2d", **{"eval.solver": "euler"})
    assert flow_evals_per_token(l2d_cell) == 7 + 1
    l2d = cell_cost(l2d_cell, [], h100, arch)
    assert l2d.eval_tokens == 1319 * (128 + 256 + 8 * 256)
    assert l2d.train_flops > lora.train_flops  # the main path's forward comes first
    dream = cell_cost(_cell("dream-7b-instruct", "lora"), [], h100, KNOWN["dream-7b-instruct"])
    assert dream.eval_tokens == 1319 * 256 * (128 + 256)  # the diffusion sampler: per step


def test_dry_run_costs_causal_aliases_and_diffusion_gemma(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("COLUMNS", "300")
    out_dir = ["--dry-run", "--out", str(tmp_path / "r"), "--device-kind", "H100"]
    args = ["run", "--model", "llama-3.2-1b-instruct", "--methods", "base,lora,l2d", "--tasks",
            "gsm8k", "--set", "train.data=task", *out_dir]  # fmt: skip
    code, out, _ = run_cli(args, monkeypatch, capsys)
    assert code == 0, out
    assert "params" in out and "trainable" in out and "1.2G" in out  # 1.24e9 parameters
    lora = adapter_params(
        KNOWN["llama-3.2-1b-instruct"], "lora", get_method("lora").config(rank=32)
    )
    assert f"{lora / 1e6:.1f}M" in out and "GPU-h" in out and "0.0 GPU-hours" not in out
    assert "peak mem" in out and "not costed" not in out
    folder = _diffusion_gemma_folder(tmp_path)
    args = ["run", "--model", str(folder), "--methods", "lora", "--tasks", "gsm8k",
            "--set", "train.data=task", *out_dir]  # fmt: skip
    code, out, _ = run_cli(args, monkeypatch, capsys)
    assert code == 0 and "GPU-h" in out and "peak mem" in out and "not costed" not in out
    args[2] = "diffusiongemma-26b-a4b-it"  # no shapes known offline: the cells and one line
    code, out, _ = run_cli(args, monkeypatch, capsys)
    assert code == 0, out
    lines = [line for line in out.splitlines() if "not costed" in line]
    assert len(lines) == 1 and "diffusiongemma-26b-a4b-it" in lines[0] and "--model DIR" in out
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("build", ["build_llada", "build_dream"])
def test_released_diffusion_parameter_counts_equal_their_weights(build, tmp_path):
    """A released-code folder's counted parameters equal its weights (Dream's q/k/v carry
    biases, as its modeling code builds them), and Dream-7B's table entry is Qwen2.5-7B's size."""
    import math

    from safetensors import safe_open

    import tests.released_models as released
    from harness.costs.architecture import DREAM_7B

    folder = getattr(released, build)(tmp_path)
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        weights = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
    assert architecture_for(str(folder)).total_params == weights
    assert DREAM_7B.total_params == KNOWN["qwen2.5-7b-instruct"].total_params == 7_615_616_512
