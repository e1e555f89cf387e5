"""AUP (accuracy under parallelism), d3LLM's score for fast samplers: exact small cases."""

from __future__ import annotations

import dataclasses
import math

import pytest

from reports.aup import aup, weight


def test_weight_is_one_at_the_best_accuracy_and_decays_exponentially_below_it():
    assert weight(80.0, 80.0) == 1.0
    assert weight(90.0, 80.0) == 1.0  # capped at 1
    assert weight(40.0, 80.0) == pytest.approx(0.22313016014842982)  # exp(-1.5)


def test_aup_of_a_three_point_curve_worked_by_hand():
    # y_1 = 80 at 1 token per forward; the point at 70 lies below 80 - 5 and is dropped.
    # 1 * 80 + (2 - 1) * (78 * exp(-3 * (1 - 78/80)) + 80 * 1) / 2
    #   = 80 + (78 * 0.927743486 + 80) / 2 = 80 + (72.363992 + 80) / 2 = 156.181996
    points = [(3.0, 70.0), (1.0, 80.0), (2.0, 78.0)]
    assert aup(points, y_max=80.0) == pytest.approx(156.181996, abs=1e-5)


def test_a_curve_below_the_best_method_is_discounted():
    # 1 * 50 + (4 - 1) * (50 W + 50 W) / 2 with W = exp(-3 * (1 - 50/100)) = exp(-1.5)
    assert aup([(1.0, 50.0), (4.0, 50.0)], y_max=100.0) == pytest.approx(
        50 + 1.5 * 100 * math.exp(-1.5)
    )
    assert aup([(1.0, 50.0), (4.0, 50.0)], y_max=50.0) == pytest.approx(50 + 1.5 * 100)


def test_a_single_point_scores_tokens_per_forward_times_accuracy():
    assert aup([(4.0, 75.0)], y_max=100.0) == pytest.approx(300.0)


def test_aup_rejects_an_empty_curve_and_non_positive_parallelism():
    with pytest.raises(ValueError):
        aup([], y_max=100.0)
    with pytest.raises(ValueError):
        aup([(0.0, 50.0)], y_max=100.0)


def test_the_fast_sampling_section_scores_each_method_and_sampler_family(tmp_path):
    from reports.sampler import aup_table, sampler_family
    from results.testing import make_record
    from tests.test_sampling_grid import _with_sampler

    assert sampler_family("cache=dual,parallel=threshold:0.9") == "cache=dual,parallel=threshold"
    assert sampler_family("cache=prefix") == "cache=prefix"
    base = make_record(method="nara", correct={16: [1, 1, 1, 1]})
    plain = _with_sampler(base, "plain", [1, 1, 1, 1], 1.0)
    fast = _with_sampler(base, "cache=dual,parallel=threshold:0.9", [1, 1, 0, 1], 0.25)
    merged = dataclasses.replace(plain, scores=[plain.scores[0], fast.scores[0]])
    rows = {r[3]: r for r in aup_table([merged]).rows}
    assert rows["plain"][5] == "100.0"  # 1 token per forward x 100%
    assert rows["cache=dual,parallel=threshold"][5] == "300.0"  # 4 x 75%
    # Together: 75% lies more than 5 points below the plain sampler's 100%, so it is dropped.
    assert rows["all settings"][5] == "100.0"
