"""The fine-tuning loop: per-example noise reaches the adapter, schedule, best checkpoint."""

from __future__ import annotations

import pytest
import torch

from harness.config.cell import TrainConfig
from harness.processes.training import lr_at, total_updates, train_adapter
from methods.registry import get_method
from tests.conftest import LevelRecorder, make_tiny_dlm

DATA = [([10 + i, 11, 12], [20 + i % 5, 21]) for i in range(24)]


def test_training_feeds_per_example_noise_and_validates_in_bins():
    dlm = make_tiny_dlm()
    method = get_method("nara")
    adapter = method.apply(dlm, method.config(rank=4, hidden_sizes=(8, 8)))
    rec = LevelRecorder(dlm)
    config = TrainConfig(steps=2, batch_size=4, grad_accum=2, lr=1e-2, val_every=2, noise_bins=5)
    result = train_adapter(dlm, adapter, DATA[:16], DATA[16:], config, seed=0)
    train_levels = rec.levels[:4]  # 2 updates x 2 micro-batches, then validation
    assert all(level.shape == (4,) and len(set(level.tolist())) == 4 for level in train_levels)
    val_levels = rec.levels[4:]
    assert len(val_levels) == 5 * 2  # 5 bins x 2 validation batches of 4
    for b, level in enumerate(val_levels):  # every example at its bin's mid level
        mid = ((b // 2) + 0.5) / 5
        assert torch.allclose(level, torch.full((4,), mid))
    assert len(result.val_bins) == 5 and result.best_step == 2
    assert result.tokens > 0 and result.train_time_s > 0


def test_same_seed_same_training_for_every_method_draws():
    levels = []
    for name in ("lora", "static_core"):
        dlm = make_tiny_dlm()
        method = get_method(name)
        adapter = method.apply(dlm, method.config(rank=4))
        rec = LevelRecorder(dlm)
        train_adapter(
            dlm, adapter, DATA, [], TrainConfig(steps=3, batch_size=4, grad_accum=1), seed=7
        )
        levels.append(torch.stack(rec.levels))
    assert torch.equal(levels[0], levels[1])


def test_best_checkpoint_is_restored():
    dlm = make_tiny_dlm()
    method = get_method("lora")
    adapter = method.apply(dlm, method.config(rank=4))
    config = TrainConfig(steps=6, batch_size=4, grad_accum=1, lr=5.0, val_every=1, noise_bins=2)
    result = train_adapter(dlm, adapter, DATA[:16], DATA[16:], config, seed=0)
    # a huge learning rate makes later checkpoints worse; the best one must be the one loaded
    from harness.processes.masked.forward import MaskingConfig
    from harness.processes.masked.objective import validation_loss

    bins = validation_loss(dlm, DATA[16:], config, MaskingConfig())
    loss = sum(b["weighted_loss"] for b in bins) / len(bins)
    assert loss == pytest.approx(result.best_val_loss, rel=1e-5)
    assert result.best_val_loss == min(p["val_loss"] for p in result.curve)


def test_schedule_and_update_count():
    config = TrainConfig(epochs=2, batch_size=4, grad_accum=2, lr=1.0, warmup_ratio=0.1)
    assert total_updates(config, 40) == 10
    assert lr_at(0, 10, config) == pytest.approx(1.0)  # warmup of one update
    assert lr_at(5, 10, config) == pytest.approx(5 / 9)
    assert lr_at(10, 10, config) == 0.0


def _validation_inputs(name: str) -> torch.Tensor:
    """The masked inputs a fresh adapter of ``name`` is validated on."""
    from harness.processes.masked.forward import MaskingConfig
    from harness.processes.masked.objective import validation_loss

    dlm = make_tiny_dlm()
    method = get_method(name)
    extra = {"hidden_sizes": (8,)} if name == "nara" else {}
    method.apply(dlm, method.config(rank=4, **extra))
    inputs = []
    forward = dlm.forward

    def recording_forward(ids, level, *args, **kwargs):
        inputs.append(ids.clone())
        return forward(ids, level, *args, **kwargs)

    dlm.forward = recording_forward
    bins = validation_loss(dlm, DATA[:8], TrainConfig(batch_size=4, noise_bins=4), MaskingConfig())
    assert [b["n_tokens"] > 0 for b in bins] == [True] * 4  # every bin has examples
    return torch.cat(inputs)


def test_validation_masks_are_the_same_for_every_method_and_cover_every_bin():
    assert torch.equal(_validation_inputs("lora"), _validation_inputs("nara"))
