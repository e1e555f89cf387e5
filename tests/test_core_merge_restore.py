"""Merging a static core after its P changed in place (best-checkpoint restore, an optimizer
step) must fold the CURRENT P into the weights, never a core cached from an earlier forward."""

from __future__ import annotations

import torch

import harness.processes.masked.objective as train_module
from harness.config.cell import TrainConfig
from harness.processes.training import train_adapter
from methods.registry import get_method
from tests.conftest import make_tiny_dlm

DATA = [([10 + i, 11, 12], [20 + i % 5, 21]) for i in range(24)]
IDS = torch.randint(3, 60, (3, 9), generator=torch.Generator().manual_seed(3))
LEVEL = torch.tensor([0.2, 0.5, 0.9])


def _logits(dlm) -> torch.Tensor:
    with torch.no_grad():
        return dlm(IDS, LEVEL)


def test_merge_uses_p_after_an_in_place_change():
    dlm = make_tiny_dlm()
    method = get_method("static_core")
    adapter = method.apply(dlm, method.config(rank=4))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in adapter.adapter_parameters():
            p.add_(torch.randn(p.shape, generator=g))
    dlm.eval()
    _logits(dlm)  # a forward: the old code cached C from this P
    with torch.no_grad():
        adapter.bank.cores["all"].P.copy_(torch.randn(4, 4, generator=g) * 3)
    adapter.merge()  # no forward in between: nothing may be read from an earlier forward
    merged = _logits(dlm)
    adapter.unmerge()
    expected = _logits(dlm)  # unmerged: C computed from the new P
    torch.testing.assert_close(merged, expected, rtol=1e-5, atol=1e-5)


def test_merge_after_best_checkpoint_restore_uses_the_restored_p(monkeypatch):
    """End to end through train_adapter: validation says the FIRST checkpoint is best, so the
    restored P differs from the last one trained; the merged model must equal the restored one."""
    losses = iter([1.0, 5.0, 9.0])

    def fake_validation(*args, **kwargs):
        return [{"weighted_loss": next(losses), "bin_lo": 0.0, "bin_hi": 1.0}]

    monkeypatch.setattr(train_module, "validation_loss", fake_validation)
    dlm = make_tiny_dlm()
    method = get_method("static_core")
    adapter = method.apply(dlm, method.config(rank=4, c_scale=1.0))
    p = adapter.bank.cores["all"].P
    config = TrainConfig(steps=3, batch_size=4, grad_accum=1, lr=0.5, val_every=1, warmup_ratio=0)
    last_p = {}

    def remember(step, total, loss):
        last_p[step] = p.detach().clone()

    result = train_adapter(dlm, adapter, DATA[:16], DATA[16:], config, seed=0, on_update=remember)
    assert result.best_step == 1
    torch.testing.assert_close(p.detach(), last_p[1])  # restored
    assert not torch.allclose(last_p[1], last_p[3])  # and different from the last P trained
    adapter.merge()  # straight after the restore, as an analysis or export would
    # the merged weights hold exactly s B (I + eta P_restored)^T A on top of W0
    layer = dlm.backbone.base_model.model.layers[0].self_attn.q_proj
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    core = torch.eye(4) + 1.0 * last_p[1]
    delta = layer.get_delta_weight("default")
    torch.testing.assert_close(delta, layer.scaling["default"] * b @ core.T @ a)
    merged = _logits(dlm)
    adapter.unmerge()
    torch.testing.assert_close(merged, _logits(dlm), rtol=1e-5, atol=1e-5)
