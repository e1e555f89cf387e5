"""Power and calibration of the paired statistics: the MDE against a simulation, the A/A check on
simulated identical methods, the base row's pairing and the refusal to pair different test sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reports.calibration import aa_table, rejection_rate, seed_pair_intervals
from reports.power import minimum_detectable_effect, planning_line
from reports.stats import bootstrap_mean_ci
from reports.tables import layout, main_tables, seed_tables, stats_tables
from results.store import examples_frame, records_frame
from results.testing import make_record


def _paired_diffs(rng, n_sims: int, n: int, discordance: float, effect: float) -> np.ndarray:
    """Per simulation, n paired differences: +1 with prob (p + effect)/2, -1 with (p - effect)/2."""
    u = rng.random((n_sims, n))
    up = (discordance + effect) / 2
    return np.where(u < up, 1.0, np.where(u < discordance, -1.0, 0.0))


@pytest.mark.parametrize(("n", "discordance"), [(600, 0.2), (200, 0.4)])
def test_mde_gives_80_percent_power_in_simulation(n, discordance):
    mde = minimum_detectable_effect(n, discordance)
    rng = np.random.default_rng(0)
    d = _paired_diffs(rng, 4000, n, discordance, mde)
    sd = d.std(axis=1, ddof=1)
    z_rejects = np.abs(d.mean(axis=1)) > 1.959964 * sd / np.sqrt(n)
    assert z_rejects.mean() == pytest.approx(0.80, abs=0.03)
    # the report's own test: the percentile bootstrap interval excludes zero
    boot = [
        bootstrap_mean_ci(row, n_resamples=1000, seed=i).excludes_zero
        for i, row in enumerate(d[:200])
    ]
    assert np.mean(boot) == pytest.approx(0.80, abs=0.09)
    # and half the MDE is detected far less often
    half = _paired_diffs(rng, 4000, n, discordance, mde / 2)
    sd = half.std(axis=1, ddof=1)
    assert (np.abs(half.mean(axis=1)) > 1.959964 * sd / np.sqrt(n)).mean() < 0.4


def test_mde_edge_cases_and_dry_run_line():
    assert minimum_detectable_effect(500, 0.0) == 0.0
    assert np.isnan(minimum_detectable_effect(0, 0.2))
    assert minimum_detectable_effect(1200, 0.2) < minimum_detectable_effect(600, 0.2)
    line = planning_line("synth_math_unseen", 200, 3)
    assert "600 pairs" in line and "80% power" in line
    assert f"{100 * minimum_detectable_effect(600, 0.2):.1f}" in line


def _identical_methods_examples(rng, n_seeds: int, n_examples: int) -> pd.DataFrame:
    """One method, several seeds, every example's correctness drawn afresh from the same p_i:
    the null hypothesis holds exactly for every pair of seeds."""
    p = rng.uniform(0.1, 0.9, n_examples)
    rows = []
    for seed in range(n_seeds):
        correct = (rng.random(n_examples) < p).astype(float)
        rows.append(
            pd.DataFrame(
                {
                    "method": "lora",
                    "task": "t",
                    "metric_index": 0,
                    "seed": seed,
                    "id": [f"ex{i}" for i in range(n_examples)],
                    "correct": correct,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_aa_check_on_identical_methods_rejects_about_5_percent():
    rng = np.random.default_rng(1)
    intervals = []
    for _ in range(12):  # 12 tasks x 15 seed pairs = 180 A/A comparisons
        intervals += seed_pair_intervals(_identical_methods_examples(rng, 6, 150))
    assert len(intervals) == 180
    assert 0.02 <= rejection_rate(intervals) <= 0.10
    table = aa_table(_identical_methods_examples(rng, 3, 50), ["t"])
    assert table.rows[0][:3] == ["lora", "t", "3"] and table.rows[-1][0] == "all"


def test_base_row_is_evaluated_once_and_pairs_with_every_seed():
    base = make_record("base", "synth_math", 0, [1, 0, 0, 0], rank=None, trainable_params=0)
    recs = [base]
    for s in range(3):
        recs.append(make_record("lora", "synth_math", s, [1, 1, 1, 0]))
        recs.append(make_record("nara", "synth_math", s, [1, 1, 1, 1]))
    frame = records_frame(recs)
    lay = layout(frame, "lora")
    (main,) = main_tables(frame, lay)
    assert [r[0] for r in main.rows] == ["base", "lora", "nara"]  # the base row first
    assert main.rows[0][main.columns.index("synth_math")] == "25.0 (n=1)"
    (t,), long = stats_tables(frame, examples_frame(recs), lay)
    assert [r[0] for r in t.rows] == ["base", "nara"]
    row = long[long["method"] == "base"].iloc[0]
    assert row["n_pairs"] == 12 and row["mean_diff"] == pytest.approx(-0.5)  # 3 seeds x 4
    assert any("evaluated once" in n for n in t.notes)


def test_cells_scored_on_different_sets_are_not_paired():
    recs = [
        make_record("lora", "synth_math", 0, [1, 0, 1, 0], scored_set_hash="aaa"),
        make_record("nara", "synth_math", 0, [1, 1, 1, 0], scored_set_hash="bbb"),
        make_record("dora", "synth_math", 0, [1, 1, 1, 0], scored_set_hash="aaa"),
    ]
    frame = records_frame(recs)
    lay = layout(frame, "lora")
    (t,), long = stats_tables(frame, examples_frame(recs), lay)
    cells = {r[0]: r[1] for r in t.rows}
    assert cells["nara"] == "not paired: scored sets differ"
    assert cells["dora"].startswith("+25.0 [")
    assert sum("Not paired" in n for n in t.notes) == 1
    assert not long[long["method"] == "nara"].iloc[0]["paired"]


def test_seed_table_shows_each_seeds_difference_and_when_the_seeds_disagree():
    recs = [
        make_record("lora", "synth_math", 0, [1, 0, 0, 0]),
        make_record("nara", "synth_math", 0, [1, 1, 0, 0]),  # seed 0: +25
        make_record("lora", "synth_math", 1, [1, 1, 1, 0]),
        make_record("nara", "synth_math", 1, [1, 0, 0, 0]),  # seed 1: -50
        make_record("dora", "synth_math", 0, [1, 1, 0, 0]),
        make_record("dora", "synth_math", 1, [1, 1, 1, 1]),  # +25, +25
    ]
    frame, examples = records_frame(recs), examples_frame(recs)
    lay = layout(frame, "lora")
    (t,) = seed_tables(frame, examples, lay)
    cells = {r[0]: r[1] for r in t.rows}
    assert cells == {"dora": "+25.0 / +25.0", "nara": "+25.0 / -50.0 (seeds disagree)"}
    assert any("holds the trained adapters fixed" in n for n in t.notes)
    _, long = stats_tables(frame, examples, lay)
    row = long[long["method"] == "nara"].iloc[0]
    assert row["seed_diffs"] == "0:+0.2500;1:-0.5000" and bool(row["seeds_disagree"])
    assert row["mean_diff"] == pytest.approx(-0.125)  # the pooled difference hides the split
    one_seed = [recs[0], recs[1], recs[4]]  # seed 0 only: nothing to show seed by seed
    frame = records_frame(one_seed)
    assert seed_tables(frame, examples_frame(one_seed), layout(frame, "lora")) == []


def test_seed_table_refuses_to_pair_different_test_sets():
    recs = [
        make_record(m, "synth_math", s, [1, 0, 1, 0], scored_set_hash=h)
        for m, h in (("lora", "aaa"), ("nara", "bbb"))
        for s in (0, 1)
    ]
    frame = records_frame(recs)
    (t,) = seed_tables(frame, examples_frame(recs), layout(frame, "lora"))
    assert t.rows == [["nara", "not paired: scored sets differ"]]
