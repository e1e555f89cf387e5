"""Adapter folders: save -> load round trips, stock peft loading, analysis from the folder alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from peft import PeftModel

from harness.ground.errors import BenchError
from harness.models.dlm import DiffusionLM, ModelInfo
from harness.models.tiny import TinyDLLM, TinyDLLMConfig
from harness.models.tokenizer import CharTokenizer
from methods import core_trajectory, get_method, load_adapter, update_norms

RANK = 4
LEVELS = torch.tensor([0.0, 0.3, 0.7, 1.0])
FIELDS = {
    "lora": {},
    "dora": {},
    "static_core": {},
    "nara": {"hidden_sizes": (16, 16)},
}


def make_dlm(seed: int = 0) -> DiffusionLM:
    torch.manual_seed(seed)
    config = TinyDLLMConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    return DiffusionLM(TinyDLLM(config), CharTokenizer(), ModelInfo("tiny", "tiny", "test"))


def ids() -> torch.Tensor:
    return torch.randint(3, 100, (4, 12), generator=torch.Generator().manual_seed(1))


def trained(method: str, **fields):
    """An adapted model whose every adapter parameter is random (as after training)."""
    dlm = make_dlm()
    m = get_method(method)
    adapter = m.apply(dlm, m.config(rank=RANK, **{**FIELDS[method], **fields}))
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in adapter.adapter_parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)
    dlm.eval()
    return dlm, adapter


@pytest.mark.parametrize("method", ["lora", "dora", "static_core", "nara"])
def test_save_load_reproduces_outputs_at_several_noise_levels(method, tmp_path):
    dlm, adapter = trained(method)
    x = ids()
    with torch.no_grad():
        expected = [dlm(x, LEVELS), dlm(x, LEVELS.flip(0)), dlm(x, torch.full((4,), 0.5))]
    adapter.save(tmp_path)
    assert {"adapter_config.json", "adapter_model.safetensors", "bench_method.json"} <= {
        p.name for p in tmp_path.iterdir()
    }
    fresh = make_dlm()
    torch.manual_seed(12345)  # a different draw for everything the adapter initialises
    loaded = load_adapter(fresh, tmp_path)
    assert loaded.method.name == method and loaded.config == adapter.config
    fresh.eval()
    with torch.no_grad():
        got = [fresh(x, LEVELS), fresh(x, LEVELS.flip(0)), fresh(x, torch.full((4,), 0.5))]
    for e, o in zip(expected, got, strict=True):
        torch.testing.assert_close(o, e, rtol=0, atol=1e-6)
    assert not any(p.requires_grad for p in loaded.adapter_parameters())


def test_fourier_buffer_is_saved_and_restored(tmp_path):
    dlm, adapter = trained("nara")
    freqs = adapter.bank.cores["all"].embeddings[0].freqs.clone()
    adapter.save(tmp_path)
    fresh, other = make_dlm(), make_dlm()
    torch.manual_seed(999)  # what a fresh apply would draw: loading must replace it
    redrawn = get_method("nara").apply(
        other, get_method("nara").config(**FIELDS["nara"], rank=RANK)
    )
    assert not torch.equal(redrawn.bank.cores["all"].embeddings[0].freqs, freqs)
    torch.manual_seed(999)
    loaded = load_adapter(fresh, tmp_path)
    assert torch.equal(loaded.bank.cores["all"].embeddings[0].freqs, freqs)


def test_load_trainable_resumes_training(tmp_path):
    _, adapter = trained("nara")
    adapter.save(tmp_path)
    loaded = load_adapter(make_dlm(), tmp_path, trainable=True)
    assert loaded.parameter_counts().trainable == adapter.parameter_counts().trainable > 0


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_lora_and_dora_folders_load_with_stock_peft(method, tmp_path):
    dlm, adapter = trained(method)
    x = ids()
    with torch.no_grad():
        expected = dlm(x, LEVELS)
    adapter.save(tmp_path)
    torch.manual_seed(0)
    base = TinyDLLM(TinyDLLMConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2))
    stock = PeftModel.from_pretrained(base, str(tmp_path)).eval()
    with torch.no_grad():
        got = stock(input_ids=x).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["use_dora"] == (
        method == "dora"
    )


def test_loading_a_folder_that_is_not_an_adapter_fails(tmp_path):
    with pytest.raises(BenchError, match="bench_method.json is missing"):
        load_adapter(make_dlm(), tmp_path)


def delta_norm(layer, core: torch.Tensor) -> float:
    a = layer.lora_A["default"].weight.double()
    b = layer.lora_B["default"].weight.double()
    return float(layer.scaling["default"] * torch.linalg.norm(b @ core.double().T @ a).detach())


def test_core_trajectory_and_update_norms_from_the_folder_alone(tmp_path):
    dlm, adapter = trained("nara")
    adapter.save(tmp_path)
    ts = np.array([0.0, 0.25, 0.5, 1.0])
    trajectory = core_trajectory(tmp_path, ts)
    assert trajectory.shape == (4, RANK, RANK)
    with torch.no_grad():
        direct = adapter.bank.compute(torch.tensor(ts, dtype=torch.float32))["all"]
    np.testing.assert_allclose(trajectory, direct.double().numpy(), rtol=1e-6, atol=1e-6)
    assert np.abs(trajectory[0] - trajectory[-1]).max() > 1e-3

    norms = update_norms(tmp_path, ts)
    assert sorted(norms) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    layers = dlm.backbone.base_model.model.layers
    for i in range(len(ts)):
        expected = np.mean([delta_norm(layer.self_attn.q_proj, direct[i]) for layer in layers])
        assert norms["q_proj"][i] == pytest.approx(expected, rel=1e-6)


def test_trajectory_of_an_untrained_nara_is_the_identity(tmp_path):
    get_method("nara").apply(make_dlm(), get_method("nara").config(rank=RANK)).save(tmp_path)
    trajectory = core_trajectory(tmp_path, np.linspace(0, 1, 5))
    np.testing.assert_array_equal(trajectory, np.broadcast_to(np.eye(RANK), (5, RANK, RANK)))


def test_static_core_trajectory_is_constant_and_lora_has_none(tmp_path):
    _, static = trained("static_core")
    static.save(tmp_path / "static")
    trajectory = core_trajectory(tmp_path / "static", np.array([0.1, 0.9]))
    np.testing.assert_array_equal(trajectory[0], trajectory[1])
    assert np.abs(trajectory[0] - np.eye(RANK)).max() > 1e-3
    _, lora = trained("lora")
    lora.save(tmp_path / "lora")
    with pytest.raises(BenchError, match="no core matrix"):
        core_trajectory(tmp_path / "lora", np.array([0.5]))
    norms = update_norms(tmp_path / "lora", np.array([0.1, 0.9]))
    assert norms["v_proj"][0] == norms["v_proj"][1] > 0


def test_per_module_type_cores_round_trip(tmp_path):
    dlm, adapter = trained("nara", core_sharing="module_type")
    assert sorted(adapter.bank.cores) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    x = ids()
    with torch.no_grad():
        expected = dlm(x, LEVELS)
    adapter.save(tmp_path)
    fresh = make_dlm()
    load_adapter(fresh, tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x, LEVELS), expected, rtol=0, atol=1e-6)
    assert core_trajectory(tmp_path, np.array([0.5]), group="q_proj").shape == (1, RANK, RANK)
    with pytest.raises(BenchError, match="several cores"):
        core_trajectory(tmp_path, np.array([0.5]))
