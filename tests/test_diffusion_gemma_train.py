"""The uniform-noise objective (DiffusionGemma) in the one training loop keeps its numbers.

The expected values were recorded on a tiny random-weight DiffusionGemma with the separate
uniform-noise training loop that the objective replaced (harness/train_uniform.py at commit
c71b3e9; one torch thread, CPU, fp32): training losses, validation losses per bin, the best
step (not the last, so the best-checkpoint restore is exercised), token count and the restored
adapter weights.
"""

from __future__ import annotations

import pytest
import torch

from harness.models.loader import load_model
from harness.processes.training import objective_for, train_adapter, validate_untrained
from harness.processes.uniform.objective import UniformNoiseObjective
from methods.dropout import GapDropout
from methods.registry import get_method
from tests.diffusion_gemma_models import PAIRS, build_diffusion_gemma, train_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# the shared two-row batches at lr 0.05, here 3 updates of 2 micro-batches, validated each update
CONFIG = train_config(steps=3, grad_accum=2, val_every=1, noise_bins=2)
BASE_BINS = [5.357561270395915, 5.486624717712402]
CURVE = [
    (5.44345760345459, 5.3890587488810215),
    (5.344254970550537, 5.283822933832804),
    (5.486191034317017, 5.29889186223348),
]
PARAM_SUMS = [
    0.5034446939826012,
    0.060940565541386604,
    1.115805884823203,
    -1.1604557130485773,
    -0.21747871115803719,
    0.9845101460814476,
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_diffusion_gemma(tmp_path_factory.mktemp("dgemma-train"))


def test_uniform_noise_families_train_with_the_uniform_noise_objective(folder):
    assert isinstance(objective_for(load_model(str(folder), "cpu")), UniformNoiseObjective)


def test_uniform_noise_training_keeps_the_numbers_of_the_separate_loop(folder):
    dlm = load_model(str(folder), "cpu")
    tok = dlm.tokenizer
    data = [(tok.encode_prompt(p), tok.encode(a)) for p, a in PAIRS]
    base = validate_untrained(dlm, data[:3], CONFIG)
    assert [b["weighted_loss"] for b in base.val_bins] == pytest.approx(BASE_BINS, rel=1e-5)
    assert [b["n_tokens"] for b in base.val_bins] == [24, 24]
    assert base.best_val_loss == pytest.approx(sum(BASE_BINS) / 2, rel=1e-5)

    torch.manual_seed(0)
    method = get_method("nara")
    adapter = method.apply(dlm, method.config(rank=4, hidden_sizes=(8, 8)))
    # The numbers were recorded with torch's own dropout masks: the gap-drawn dropout draws the
    # same distribution from another stream (tests/test_gap_dropout.py).
    for module in dlm.modules():
        if type(module) is GapDropout:
            module.__class__ = torch.nn.Dropout
    result = train_adapter(dlm, adapter, data, data[:3], CONFIG, seed=0)
    curve = [(p["loss"], p["val_loss"]) for p in result.curve]
    for got, want in zip(curve, CURVE, strict=True):
        assert got == pytest.approx(want, rel=1e-5)
    assert (result.best_step, result.tokens, result.updates) == (2, 204, 3)
    assert result.best_val_loss == pytest.approx(CURVE[1][1], rel=1e-5)
    sums = [float(p.detach().double().sum()) for p in adapter.trainable_parameters()][:6]
    assert sums == pytest.approx(PARAM_SUMS, rel=1e-4, abs=1e-6)
