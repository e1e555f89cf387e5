"""The main table as `bench report` prints it: short variant labels that stay distinct however
narrow the terminal, the base row first, and the demo's table within 100 columns."""

from __future__ import annotations

from reports.build import main_table_text
from reports.tables import layout, main_tables
from reports.tables.labels import short_labels
from results.store import records_frame
from results.testing import make_record, write_run

TASKS = ("synth_math_unseen", "synth_choice_vowel", "synth_code_slice")
N = 500  # the demo's scored examples per task
TOTAL = 1_060_000  # the tiny base's parameters, about


def _answers(accuracy: float) -> list[int]:
    right = round(accuracy * N)
    return [1] * right + [0] * (N - right)


def _demo_records() -> list:
    """The demo's grid: the base once, LoRA and NaRA at core_lr_scale 1 and 5 over two seeds,
    with the tiny model's parameter counts."""
    recs = []
    for i, task in enumerate(TASKS):
        base = (0.194, 0.004, 0.0)[i]
        recs.append(
            make_record(
                "base", task, 0, _answers(base), rank=None, trainable_params=0, total_params=TOTAL
            )
        )
        for seed in (0, 1):
            lora = (0.629, 0.996, 0.563)[i] - 0.004 * seed
            recs.append(
                make_record(
                    "lora", task, seed, _answers(lora), trainable_params=33_792, total_params=TOTAL
                )
            )
            for scale, acc in ((1.0, (0.637, 0.915, 0.499)), (5.0, (0.708, 1.0, 0.501))):
                recs.append(
                    make_record(
                        "nara",
                        task,
                        seed,
                        _answers(acc[i] - 0.004 * seed),
                        trainable_params=185_344,
                        total_params=TOTAL,
                        axes={"nara.core_lr_scale": scale},
                    )
                )
    return recs


def _labels(text: str) -> list[str]:
    """The first column of every table row of a rendered main table."""
    rows = text.split("─\n", 1)[1].splitlines()
    return [line.split()[0] for line in rows if line.strip() and line.lstrip() == line][:4]


def test_variant_labels_stay_distinct_when_cut(tmp_path):
    run = write_run(tmp_path / "run", _demo_records())
    for width in (100, 60):
        text = main_table_text([run], width=width)
        labels = _labels(text)
        assert labels == ["base", "lora", "nara[core_lr×1]", "nara[core_lr×5]"], (width, text)
        assert "…" not in "".join(labels)
    text = main_table_text([run], width=100)
    assert "nara[core_lr×5]: nara with nara.core_lr_scale=5.0" in text


def test_short_labels_fall_back_to_the_full_label_when_they_would_coincide():
    keys = [
        ("lora", (("train.lr", 1e-4), ("eval.lr", None))),
        ("lora", (("train.lr", None), ("eval.lr", 1e-4))),
        ("nara", (("train.lr", None), ("eval.lr", None))),
    ]
    labels, _ = short_labels(keys)
    # two row axes share the field name `lr`: their sections stay, so the labels differ
    assert labels[keys[0]] == "lora[train.lr=0.0001]"
    assert labels[keys[1]] == "lora[eval.lr=0.0001]"
    assert labels[keys[2]] == "nara"
    clash = [("nara", (("nara.c_scale", 0.1),)), ("nara", (("nara.c_scale", 0.10000001),))]
    labels, legend = short_labels(clash)  # both would read nara[c×0.1]: the full labels
    assert [labels[k] for k in clash] == [
        "nara (nara.c_scale=0.1)",
        "nara (nara.c_scale=0.10000001)",
    ]
    assert legend == []


def test_the_base_row_comes_first_in_the_terminal_and_the_report():
    frame = records_frame(_demo_records())
    lay = layout(frame, "lora")
    for terse in (False, True):
        (table,) = main_tables(frame, lay, terse=terse)
        assert [row[0].split("[")[0].split(" ")[0] for row in table.rows] == [
            "base",
            "lora",
            "nara",
            "nara",
        ]


def test_the_demo_table_fits_100_columns(tmp_path):
    run = write_run(tmp_path / "run", _demo_records())
    text = main_table_text([run], width=200)  # room to spare: the table takes its own width
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 100
    assert "synth_choice_vowel" in text and "99.4 ± 0.3" in text  # nothing was cut


def test_terminal_entries_show_the_seed_count_only_where_a_seed_is_missing(tmp_path):
    recs = _demo_records()
    recs.append(make_record("dora", "synth_math_unseen", 0, _answers(0.5)))  # seed 1 missing
    text = main_table_text([write_run(tmp_path / "run", recs)], width=200)
    assert "(n=2)" not in text
    assert "50.0 (n=1 of 2)" in text
