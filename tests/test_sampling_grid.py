"""Fast-sampling settings in the grid, the cell, the record and the report: evaluation-only axes
(no new cells, no retraining), one error for bad values, per-score labels, the report section."""

from __future__ import annotations

import dataclasses

import pytest

from harness.config.cell import EvalConfig
from harness.ground.errors import BenchError
from harness.run.cell import CellRequest, missing_evaluations
from harness.run.grid import Grid, sampling_variants
from results.schema import Score
from results.testing import make_record


def grid(**sets) -> Grid:
    return Grid(methods=("lora",), tasks=("synth_math",), sets=sets)


def test_sampler_axes_add_evaluations_not_cells():
    plain = grid().cells()
    fast = grid(**{"eval.cache": (None, "dual"), "eval.parallel": ("threshold:0.9",)}).cells()
    assert len(fast) == len(plain) == 1
    assert fast[0].cell_id == plain[0].cell_id  # the same trained adapter
    assert fast[0].axes == {}
    variants = sampling_variants(
        grid(**{"eval.cache": (None, "dual"), "eval.parallel": ("threshold:0.9",)}), fast[0]
    )
    assert variants == [
        {"cache": "none", "parallel": "threshold:0.9", "cache_refresh": "block"},
        {"cache": "dual", "parallel": "threshold:0.9", "cache_refresh": "block"},
    ]


def test_eval_only_fields_are_left_out_of_the_cell_id():
    cell = grid().cells()[0]
    fast = dataclasses.replace(cell, eval=dataclasses.replace(cell.eval, cache="dual"))
    slower = dataclasses.replace(cell, eval=dataclasses.replace(cell.eval, gen_length=32))
    assert fast.cell_id == cell.cell_id != slower.cell_id


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("eval.cache", "full", "none, prefix, dual"),
        ("eval.parallel", "threshold:2", "threshold:X with X in"),
        ("eval.cache_refresh", "sometimes", "step-level-change"),
    ],
)
def test_bad_grid_values_give_one_error(key, value, message):
    with pytest.raises(BenchError, match=message):
        grid(**{key: (value,)}).cells()
    with pytest.raises(BenchError, match=message):
        EvalConfig(**{key.split(".")[1]: value})


def test_a_finished_cell_is_extended_only_by_the_samplers_it_lacks():
    cell = grid().cells()[0]
    record = make_record(correct={16: [1, 0, 1, 1]})
    record.config["protocol"] = "gen"
    assert record.scores[0].sampler is None  # written before fast sampling: plain
    request = CellRequest(
        cell,
        [16],
        [
            {"cache": "none", "parallel": "none", "cache_refresh": "block"},
            {"cache": "dual", "parallel": "none", "cache_refresh": "block"},
        ],
    )
    assert missing_evaluations(request, record) == [("synth_math", 16, request.samplers[1])]
    record.scores.append(dataclasses.replace(record.scores[0], sampler="cache=dual"))
    assert missing_evaluations(request, record) == []


def test_sampler_and_stats_round_trip_through_a_score():
    score = Score("t", "accuracy", 0.5, steps=16, sampler="parallel=threshold:0.9")
    score.sampling = {"forwards": 3, "tokens": 16, "tokens_per_s": 10.0}
    again = Score.from_dict(score.to_dict())
    assert again.sampler == score.sampler and again.sampling == score.sampling
    assert "sampler" not in Score("t", "accuracy", 0.5).to_dict()  # old records stay as they were


def _with_sampler(record, label: str, correct: list[int], fpt: float):
    record = dataclasses.replace(record, scores=[dataclasses.replace(s) for s in record.scores])
    primary = record.scores[0]
    primary.sampler = label
    primary.per_example = [{"id": f"ex{i}", "correct": c} for i, c in enumerate(correct)]
    primary.value = sum(correct) / len(correct)
    primary.sampling = {
        "tokens_per_s": 100.0 / fpt,
        "forwards_per_token": fpt,
        "cache_used": "dual",
    }
    return record


def test_report_section_shows_speed_and_paired_difference_per_method(tmp_path):
    import pandas as pd

    from reports.sampler import has_sampler_axis, sampler_markdown, sampler_table
    from results.store import examples_frame

    base = make_record(method="nara", correct={16: [1, 1, 1, 1]})
    plain = _with_sampler(base, "plain", [1, 1, 1, 1], 1.0)
    fast = _with_sampler(base, "cache=dual,parallel=threshold:0.9", [1, 1, 0, 1], 0.25)
    merged = dataclasses.replace(plain, scores=[plain.scores[0], fast.scores[0]])
    records = [merged]
    assert has_sampler_axis(records)
    table = sampler_table(records, examples_frame(records))
    rows = {r[3]: r for r in table.rows}
    assert rows["plain"][4] == "100.0" and rows["plain"][7] == "—"
    assert rows["cache=dual,parallel=threshold:0.9"][4] == "75.0"
    assert rows["cache=dual,parallel=threshold:0.9"][6] == "0.250"
    assert rows["cache=dual,parallel=threshold:0.9"][7].startswith("-25.0 [")
    lines = sampler_markdown(records, examples_frame(records), tmp_path, lambda t, out: [t.title])
    assert lines[0] == "## Fast sampling" and (tmp_path / "sampler_parallelism.png").is_file()
    assert sampler_markdown([plain], pd.DataFrame(), tmp_path, lambda t, out: []) == []


def test_lm_eval_model_takes_the_same_settings_and_records_them():
    from lm_eval.api.instance import Instance

    from harness.lmeval import BenchDLLM, scores_from_results
    from tests.conftest import make_tiny_dlm

    dlm = make_tiny_dlm()
    lm = BenchDLLM(dlm=dlm, cache="dual", parallel="threshold:0.9", gen_length=8, steps=8)
    assert (lm.sampler.cache, lm.sampler.parallel) == ("dual", "threshold:0.9")
    request = Instance("generate_until", {}, ("Q: 1+1=", {"until": ["\n"]}), 0)
    request.task_name = "t"
    lm.generate_until([request])
    assert lm.sampling["t"].cache_used == "dual" and lm.sampling["t"].forwards > 0
    results = {"results": {"t": {"exact_match,none": 0.5}}}
    (score,) = scores_from_results(results, lm.steps_used, lm.sampling, lm.sampler.label)
    assert score.sampler == "cache=dual,parallel=threshold:0.9" and score.sampling["forwards"]
    with pytest.raises(BenchError, match="none, prefix, dual"):
        BenchDLLM(dlm=dlm, cache="kv")
