"""The main, cost and statistics tables built from records made in the test."""

from reports.tables import costs_table, footnotes, layout, main_tables, stats_tables
from results.schema import Provenance
from results.store import examples_frame, records_frame
from results.testing import make_record

# per seed: 4 examples -> accuracy 0.5 / 0.75 / 1.0  (mean 0.75, sample std 0.25)
HIGH = {0: [1, 1, 0, 0], 1: [1, 1, 1, 0], 2: [1, 1, 1, 1]}
# per seed: 0.25 / 0.5 / 0.75 (mean 0.5, sample std 0.25)
LOW = {0: [1, 0, 0, 0], 1: [1, 1, 0, 0], 2: [1, 1, 1, 0]}


def _tables(records, baseline="lora"):
    frame = records_frame(records)
    lay = layout(frame, baseline)
    return frame, lay, main_tables(frame, lay)


def _cell(table, row_prefix, column):
    j = table.columns.index(column)
    for cells, bold in zip(table.rows, table.bold, strict=True):
        if cells[0] == row_prefix:
            return cells[j], bold[j]
    raise KeyError(row_prefix)


def test_main_table_means_stds_and_bold():
    recs = []
    for s in range(3):
        recs.append(make_record("lora", "synth_math", s, HIGH[s], trainable_params=1000))
        recs.append(make_record("nara", "synth_math", s, LOW[s], trainable_params=5000))
        recs.append(make_record("lora", "synth_code", s, LOW[s], trainable_params=1000))
        recs.append(make_record("nara", "synth_code", s, [1, 1, 1, 1], trainable_params=5000))
    _, lay, (t,) = _tables(recs)
    assert lay.scale == 100.0
    assert t.columns == ["method", "trainable (% of base)", "synth_code", "synth_math", "average"]
    assert [r[0] for r in t.rows] == ["lora", "nara"]
    assert _cell(t, "lora", "synth_math") == ("75.0 ± 25.0 (n=3)", True)
    assert _cell(t, "nara", "synth_math") == ("50.0 ± 25.0 (n=3)", False)
    assert _cell(t, "lora", "synth_code") == ("50.0 ± 25.0 (n=3)", False)
    assert _cell(t, "nara", "synth_code") == ("100.0 ± 0.0 (n=3)", True)
    # averages per seed: lora (0.375, 0.625, 0.875); nara (0.625, 0.75, 0.875)
    assert _cell(t, "lora", "average") == ("62.5 ± 25.0 (n=3)", False)
    assert _cell(t, "nara", "average")[1] is True
    assert _cell(t, "nara", "average")[0].startswith("75.0 ± 12.5 ")
    assert _cell(t, "lora", "trainable (% of base)")[0] == "1K (1%)"
    assert _cell(t, "nara", "trainable (% of base)")[0] == "5K (5%)"
    md = t.to_markdown()
    assert "| **75.0 ± 25.0 (n=3)** |" in md and "| 50.0 ± 25.0 (n=3) |" in md
    assert "**" not in t.to_csv()


def test_ties_are_all_bold():
    recs = [make_record(m, "synth_math", 0, [1, 0]) for m in ("lora", "dora")]
    _, _, (t,) = _tables(recs)
    assert _cell(t, "lora", "synth_math") == ("50.0 (n=1)", True)
    assert _cell(t, "dora", "synth_math") == ("50.0 (n=1)", True)


def test_missing_seeds_failed_and_running_cells_are_shown():
    recs = [make_record("lora", "synth_math", s, HIGH[s]) for s in range(3)]
    recs += [make_record("lora", "synth_code", s, HIGH[s]) for s in range(3)]
    recs += [make_record("dora", "synth_math", s, HIGH[s]) for s in (0, 1)]  # seed 2 missing
    recs += [make_record("dora", "synth_code", 0, HIGH[0])]
    recs += [make_record("dora", "synth_code", 1, status="failed")]
    recs += [make_record("dora", "synth_code", 2, status="running")]
    recs += [make_record("nara", "synth_math", s, status="failed") for s in range(3)]
    _, _, (t,) = _tables(recs)
    assert [r[0] for r in t.rows] == ["lora", "dora", "nara"]
    assert _cell(t, "dora", "synth_math")[0] == "62.5 ± 17.7 (n=2 of 3)"
    assert _cell(t, "dora", "synth_code")[0] == "50.0 (n=1 of 3, 1 failed, 1 running)"
    assert _cell(t, "nara", "synth_math")[0] == "failed (3 of 3)"
    assert _cell(t, "nara", "synth_code")[0] == "—"  # never run
    assert _cell(t, "dora", "average")[0] == "50.0 (n=1 of 3, 1 failed, 1 running)"
    assert _cell(t, "nara", "trainable (% of base)")[0] == "—"


def test_split_axes_make_tables_and_method_axes_make_sub_rows():
    recs = []
    for rank in (4, 8):
        recs.append(make_record("lora", "synth_math", 0, [1, 0], rank=rank))
        for c in (0.1, 0.2):
            recs.append(
                make_record("nara", "synth_math", 0, [1, 1], rank=rank, axes={"nara.c_scale": c})
            )
    frame, lay, tables = _tables(recs)
    assert lay.split_axes == ["rank"] and lay.row_axes == ["nara.c_scale"]
    assert [t.title for t in tables] == ["Main results (%) — rank=4", "Main results (%) — rank=8"]
    assert [t.key for t in tables] == ["main_rank=4", "main_rank=8"]
    assert [r[0] for r in tables[0].rows] == [
        "lora",
        "nara (nara.c_scale=0.1)",
        "nara (nara.c_scale=0.2)",
    ]
    costs = costs_table(frame, lay)
    assert costs.columns[:2] == ["method", "rank"]
    assert len(costs.rows) == 6


def test_costs_are_relative_to_the_baseline():
    recs = [
        make_record("lora", "synth_math", 0, [1], trainable_params=1000, train_time_s=10.0),
        make_record("nara", "synth_math", 0, [1], trainable_params=5000, train_time_s=15.0),
    ]
    frame = records_frame(recs)
    t = costs_table(frame, layout(frame, "lora"))
    nara = t.rows[1]
    assert nara[0] == "nara"
    assert nara[t.columns.index("trainable params")] == "5K (×5.00)"
    assert nara[t.columns.index("train time")] == "15 s (×1.50)"
    assert nara[t.columns.index("peak memory")] == "—"


def test_stats_table_marks_only_differences_whose_ci_excludes_zero():
    n = 60
    recs = []
    for s in range(2):
        recs.append(make_record("lora", "synth_math", s, [0] * n))
        recs.append(make_record("nara", "synth_math", s, [1] * n))  # +100 points, constant
        recs.append(make_record("dora", "synth_math", s, [i % 2 for i in range(n)]))
        recs.append(make_record("lora", "synth_code", s, [i % 2 for i in range(n)]))
        recs.append(make_record("nara", "synth_code", s, [(i // 2) % 2 for i in range(n)]))
        recs.append(make_record("dora", "synth_code", s, [i % 2 for i in range(n)]))
    frame = records_frame(recs)
    lay = layout(frame, "lora")
    (t,), long = stats_tables(frame, examples_frame(recs), lay)
    assert [r[0] for r in t.rows] == ["dora", "nara"]
    nara_math = t.rows[1][t.columns.index("synth_math")]
    # every pair disagrees (discordance 1): MDE = 2.80 * sqrt(1 / (120 + 2.80^2)) = 24.8 points
    assert nara_math == "+100.0* [+100.0, +100.0] (n=120; MDE 24.8)"
    nara_code = t.rows[1][t.columns.index("synth_code")]
    assert "*" not in nara_code and nara_code.startswith("+0.0 [")
    dora_code = t.rows[0][t.columns.index("synth_code")]
    assert dora_code == "+0.0 [+0.0, +0.0] (n=120; MDE 0.0)"  # identical predictions
    row = long[(long["method"] == "nara") & (long["task"] == "synth_math")].iloc[0]
    assert row["excludes_zero"] and row["mean_diff"] == 1.0


def test_footnotes_state_fallbacks_limits_and_sampler():
    prov = [
        Provenance(
            "gsm8k",
            "train",
            "local:data/gsm8k_train.jsonl",
            fallback_of="hub:gsm8k/train",
            size=500,
            content_hash="0123456789abcdef",
        ),
        Provenance("gsm8k", "test", "hub:gsm8k", size=1319),
    ]
    rec = make_record(
        "lora",
        "gsm8k",
        0,
        [1],
        provenance=prov,
        eval_cfg={"protocol": "generate", "steps": 64, "limit": 50, "block_length": 8},
    )
    notes = footnotes([rec])
    assert notes[0].startswith(
        "**Fallback data**: gsm8k `train` split comes from "
        "local:data/gsm8k_train.jsonl in place of hub:gsm8k/train"
    )
    assert any("first 50 examples of gsm8k" in n for n in notes)
    assert any("block_length=8" in n and "protocol=generate" in n for n in notes)
