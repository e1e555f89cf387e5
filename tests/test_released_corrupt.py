"""A released-code folder that would give silently wrong numbers stops the load with one line."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_file, save_file

from harness.ground.errors import BenchError
from harness.models import dream as dream_module
from harness.models import loader
from harness.models.loader import load_model
from harness.models.sanity import check_loaded
from tests.released_models import build_dream, build_llada

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NAN = float("nan")


def _edit_weights(folder, edit) -> None:
    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_nan_weight_fails_with_one_line(tmp_path):
    folder = build_llada(tmp_path)
    _edit_weights(folder, lambda t: t["model.transformer.blocks.1.k_proj.weight"].fill_(NAN))
    with pytest.raises(BenchError) as err:
        load_model(str(folder), "cpu")
    assert "non-finite values in model.transformer.blocks.1.k_proj.weight" in _one_line(err)


def test_missing_weight_fails_instead_of_random_init(tmp_path):
    folder = build_dream(tmp_path)
    _edit_weights(folder, lambda t: t.pop("model.layers.0.mlp.up_proj.weight"))
    with pytest.raises(BenchError) as err:
        load_model(str(folder), "cpu")
    assert "missing weight model.layers.0.mlp.up_proj.weight" in _one_line(err)


def _use_dream_repair(monkeypatch, repair) -> None:
    family = dataclasses.replace(dream_module.DREAM, repair_model=repair)
    monkeypatch.setattr(loader, "get_family", lambda name: family)


def test_dream_rotary_not_from_its_config_fails(tmp_path, monkeypatch):
    """A wrong inv_freq (here: another rope_theta than the config's) is caught by the check."""
    folder = build_dream(tmp_path)
    repair = dream_module.DREAM.repair_model

    def wrong_theta(model):
        names = repair(model)
        for module in model.modules():
            if isinstance(getattr(module, "inv_freq", None), torch.Tensor):
                module.inv_freq.copy_(module.inv_freq**0.5)
        return names

    _use_dream_repair(monkeypatch, wrong_theta)
    with pytest.raises(BenchError) as err:
        load_model(str(folder), "cpu")
    assert "inv_freq differs from rope_theta=1000000.0" in _one_line(err)


def test_dream_without_the_inv_freq_repair_fails(tmp_path, monkeypatch):
    """Without the repair the buffers are uninitialised memory: the check refuses the model."""
    folder = build_dream(tmp_path)
    _use_dream_repair(monkeypatch, lambda model: ())
    with pytest.raises(BenchError, match="rotary|non-finite"):
        load_model(str(folder), "cpu")


def test_llada_rope_table_off_its_config_fails(tmp_path):
    dlm = load_model(str(build_llada(tmp_path)), "cpu")
    rotary = next(m for m in dlm.backbone.modules() if type(m).__name__ == "RotaryEmbedding")
    sin, _ = rotary.get_rotary_embedding(8, torch.device("cpu"))
    sin.mul_(1.01)  # the table is cached: this corrupts it for every block
    with pytest.raises(BenchError) as err:
        check_loaded(dlm, dlm.family)
    assert "RoPE sin table differs" in _one_line(err)
