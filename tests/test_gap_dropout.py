"""LoRA's dropout drawn by its gaps (methods/dropout.py): the distribution of torch's dropout
(each element zeroed independently with probability p, the rest scaled by 1 / (1 - p)), checked
position by position, pair by pair and in its gradient; torch's own dropout where it is used."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from methods.dropout import GapDropout, bernoulli_keep_mask, use_gap_dropout
from methods.registry import get_method
from tests.conftest import make_tiny_dlm

P = 0.05


def _zeros(n: int, draws: int, p: float = P) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.stack([bernoulli_keep_mask(n, p, torch.float32) == 0 for _ in range(draws)])


def test_every_position_is_zeroed_with_probability_p():
    """Per position over 4,000 masks of 60: counts ~ Binomial(4000, p) (first and last
    included), a chi-square across positions, and the overall rate within 4 sigma."""
    zeros = _zeros(60, 4000).float()
    counts = zeros.sum(dim=0)
    mean, var = 4000 * P, 4000 * P * (1 - P)
    assert (counts - mean).abs().max() < 5 * math.sqrt(var)
    chi2 = float(((counts - mean) ** 2 / var).sum())  # 60 degrees of freedom: mean 60, sd 11
    assert 60 - 5 * 11 < chi2 < 60 + 5 * 11
    total = zeros.mean().item()
    assert abs(total - P) < 4 * math.sqrt(P * (1 - P) / zeros.numel())


def test_zeros_are_independent_of_their_neighbours():
    """Both zero at distance 1, 2 and 7: p^2 within 5 sigma; the gap between zeros (in one long
    mask, so that no gap is cut by the row's end) has the geometric law's mean 1/p."""
    zeros = _zeros(400, 600)
    n_pairs = zeros.shape[0] * (zeros.shape[1] - 7)
    for lag in (1, 2, 7):
        both = (zeros[:, :-lag] & zeros[:, lag:]).sum().item() / (zeros.shape[0] * (400 - lag))
        assert abs(both - P * P) < 5 * math.sqrt(P * P / n_pairs)
    torch.manual_seed(3)
    long = bernoulli_keep_mask(400_000, P, torch.float32) == 0  # one long mask: gaps uncut
    gaps = torch.diff(long.nonzero().flatten()).float()
    assert abs(gaps.mean().item() - 1 / P) < 5 * math.sqrt((1 - P) / P**2 / len(gaps))


def test_kept_values_scale_as_torch_dropout_and_gradients_follow_the_mask():
    torch.manual_seed(1)
    x = torch.randn(8, 30, 16, requires_grad=True)
    layer = GapDropout(P).train()
    torch.manual_seed(1)
    y = layer(x)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / (1 - P))
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / (1 - P))
    torch.manual_seed(1)
    assert torch.equal(layer(x.detach()), y.detach())  # the global generator: seeded, repeated


def test_eval_mode_large_p_and_edge_sizes():
    x = torch.randn(5, 7)
    assert GapDropout(P).eval()(x) is x
    assert GapDropout(0.0).train()(x) is x
    torch.manual_seed(2)
    big = GapDropout(0.5).train()(x)  # torch's own dropout above GAP_DRAW_MAX_P
    torch.manual_seed(2)
    assert torch.equal(big, nn.functional.dropout(x, 0.5, True))
    for n in (1, 2, 3):
        mask = bernoulli_keep_mask(n, P, torch.float32)
        scale = torch.tensor(1 / (1 - P), dtype=torch.float32).item()
        assert mask.shape == (n,) and set(mask.tolist()) <= {0.0, scale}
    assert GapDropout(P).train()(torch.empty(0, 4)).shape == (0, 4)


@pytest.mark.parametrize("method", ["lora", "nara", "dora", "binned_lora", "static_core"])
def test_every_lora_dropout_of_an_applied_method_draws_by_gaps(method):
    dlm = make_tiny_dlm()
    get_method(method).apply(dlm, None)
    dropouts = [m for m in dlm.backbone.modules() if isinstance(m, nn.Dropout)]
    assert dropouts and all(type(m) is GapDropout and m.p == P for m in dropouts)


def test_the_swap_touches_only_lora_dropout_dicts():
    model = nn.Module()
    model.lora_dropout = nn.ModuleDict({"default": nn.Dropout(0.1), "none": nn.Identity()})
    model.other = nn.Dropout(0.1)
    use_gap_dropout(model)
    assert type(model.lora_dropout["default"]) is GapDropout
    assert type(model.lora_dropout["none"]) is nn.Identity and type(model.other) is nn.Dropout
