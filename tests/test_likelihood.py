import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from harness.ground.errors import BenchError
from harness.processes.masked.likelihood import (
    LikelihoodConfig,
    estimate_loglikelihood,
    stratified_mask_counts,
)
from tests.conftest import LevelRecorder, make_tiny_dlm


def exact_bound(dlm, prefix, target):
    """E_n~U{1..L} E_|S|=n [L/n * sum_{i in S} -log p(x_i | x without S)] by enumeration."""
    L, p = len(target), len(prefix)
    seq = torch.tensor(prefix + target)
    total = 0.0
    for n in range(1, L + 1):
        subsets = list(itertools.combinations(range(L), n))
        for subset in subsets:
            x = seq.clone()
            for i in subset:
                x[p + i] = dlm.mask_id
            with torch.no_grad():
                logits = dlm(x[None], torch.tensor([n / L]))[0]
            ce = F.cross_entropy(logits[p:], seq[p:], reduction="none")
            total += (1 / L) * (1 / len(subsets)) * (L / n) * float(ce[list(subset)].sum())
    return -total


def test_estimator_matches_exact_enumeration_within_its_standard_error():
    dlm = make_tiny_dlm(seed=3)
    # scale the head so per-token likelihoods depend strongly on what is masked
    with torch.no_grad():
        dlm.backbone.lm_head.weight.mul_(40)
    prefix, target = [10, 11, 12], [20, 21, 22, 23]
    exact = exact_bound(dlm, prefix, target)
    est = estimate_loglikelihood(
        dlm, prefix, target, LikelihoodConfig(mc_num=512, batch_size=64, seed=1)
    )
    assert est.mc_num == 512 and est.stderr > 0
    assert abs(est.loglik - exact) < 4 * est.stderr + 1e-6
    # and it is a real (non-trivial) bound: far from zero
    assert exact < -5


def test_full_mask_of_one_token_is_exact_log_probability():
    dlm = make_tiny_dlm(seed=4)
    prefix, target = [10, 11], [30]
    with torch.no_grad():
        logits = dlm(torch.tensor([[10, 11, dlm.mask_id]]), torch.tensor([1.0]))[0, -1]
    exact = -float(F.cross_entropy(logits[None], torch.tensor([30])))
    est = estimate_loglikelihood(dlm, prefix, target, LikelihoodConfig(mc_num=8, batch_size=8))
    assert est.loglik == pytest.approx(exact, abs=1e-5)
    assert est.stderr == pytest.approx(0.0, abs=1e-6)


def test_each_monte_carlo_sample_gets_its_own_noise_level():
    dlm = make_tiny_dlm()
    rec = LevelRecorder(dlm)
    estimate_loglikelihood(
        dlm, [10], [20, 21, 22, 23], LikelihoodConfig(mc_num=8, batch_size=4, seed=0)
    )
    assert len(rec.levels) == 2
    for level in rec.levels:
        assert level.shape == (4,)
        assert set((level * 4).round().tolist()) <= {1.0, 2.0, 3.0, 4.0}
        assert len(set(level.tolist())) > 1


def test_stratified_counts_cover_the_range():
    g = torch.Generator().manual_seed(0)
    counts = stratified_mask_counts(10, 10, g)
    assert sorted(counts.tolist()) == list(range(1, 11))


def test_same_seed_same_estimate_and_bad_config_fails():
    dlm = make_tiny_dlm()
    a = estimate_loglikelihood(
        dlm, [10], [20, 21], LikelihoodConfig(mc_num=16, batch_size=8, seed=5)
    )
    b = estimate_loglikelihood(
        dlm, [10], [20, 21], LikelihoodConfig(mc_num=16, batch_size=8, seed=5)
    )
    assert a == b and math.isfinite(a.loglik)
    with pytest.raises(BenchError, match="multiple of batch_size"):
        LikelihoodConfig(mc_num=10, batch_size=4)
