"""Core visibility: the core's relative effect on the update is exactly 0 while C = I and
positive once the core has trained; predictions identical to the baseline are counted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from harness.config.cell import TrainConfig
from harness.processes.training import train_adapter
from methods.nara import relative_core_effect
from methods.registry import get_method
from reports.cores import identical_fraction
from tests.conftest import make_tiny_dlm

DATA = [([10 + i, 11, 12], [20 + i % 5, 21]) for i in range(24)]
LEVELS = np.array([0.1, 0.5, 0.9])


def _adapter(name: str, **fields):
    dlm = make_tiny_dlm()
    method = get_method(name)
    extra = {"hidden_sizes": (8,)} if name == "nara" else {}
    return dlm, method.apply(dlm, method.config(rank=4, **extra, **fields))


@pytest.mark.parametrize("name", ["static_core", "nara"])
def test_core_effect_is_zero_at_init_and_positive_after_training(name, tmp_path):
    dlm, adapter = _adapter(name, c_scale=0.5, core_lr_scale=10.0)
    adapter.save(tmp_path / "init")
    assert np.array_equal(relative_core_effect(tmp_path / "init", LEVELS), np.zeros(3))  # B = 0
    with torch.no_grad():  # a LoRA update of its own, the core still the identity
        for n, p in dlm.named_parameters():
            if "lora_B" in n:
                p.normal_()
    adapter.save(tmp_path / "lora_like")
    assert np.allclose(relative_core_effect(tmp_path / "lora_like", LEVELS), 0.0, atol=1e-12)
    config = TrainConfig(steps=4, batch_size=4, grad_accum=1, lr=1e-2)
    train_adapter(dlm, adapter, DATA, [], config, seed=0)
    adapter.save(tmp_path / "trained")
    effect = relative_core_effect(tmp_path / "trained", LEVELS)
    assert effect.shape == (3,) and (effect > 1e-4).all()
    if name == "static_core":
        assert np.allclose(effect, effect[0])  # a static core does not depend on t
    else:
        assert not np.allclose(effect, effect[0])


def test_core_effect_is_none_for_plain_lora(tmp_path):
    _, adapter = _adapter("lora")
    adapter.save(tmp_path / "a")
    assert relative_core_effect(tmp_path / "a", LEVELS) is None


def test_core_lr_scale_moves_the_core_faster():
    norms = {}
    for scale in (1.0, 10.0):
        dlm, adapter = _adapter("static_core", core_lr_scale=scale)
        train_adapter(dlm, adapter, DATA, [], TrainConfig(steps=3, batch_size=4, lr=1e-3), seed=0)
        norms[scale] = sum(float(p.detach().norm()) for p in adapter.core_parameters())
    assert norms[10.0] > 5 * norms[1.0] > 0


def test_identical_fraction_pairs_by_example_seed_and_steps():
    def frame(preds, seed=0):
        return pd.DataFrame(
            {"id": ["a", "b", "c", "d"], "seed": seed, "steps": 16, "prediction": preds}
        )

    same, n = identical_fraction(frame(["1", "2", "3", "4"]), frame(["1", "2", "0", "4"]))
    assert (same, n) == (0.75, 4)
    assert identical_fraction(frame(["1"] * 4), frame(["1"] * 4, seed=1))[1] == 0
