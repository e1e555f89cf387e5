"""`bench report` end to end on records written in the test: files, plots, sections, errors."""

import json
import sys
import types

import numpy as np
import pytest

import methods
from harness.ground.errors import BenchError
from reports import plots
from reports.build import build_report, load_report_data, main_table_text, seeds_disagree_line
from results.schema import Provenance
from results.testing import make_record, write_run

PNG = b"\x89PNG\r\n\x1a\n"
BINS = [(2.0 - 0.1 * i, 0.5 + 0.2 * i) for i in range(10)]


def _grid(tmp_path, steps=False, nara_axes=None):
    recs = []
    for s in range(2):
        for task in ("synth_math", "synth_choice"):
            c = {8: [1, 0, 0, 1], 16: [1, 1, 0, 1]} if steps else [1, 0, 0, 1]
            recs.append(make_record("lora", task, s, c, bins=BINS, trainable_params=1000))
            for ax in nara_axes or [{}]:
                recs.append(
                    make_record(
                        "nara",
                        task,
                        s,
                        c,
                        bins=[(w - 0.1, ce) for w, ce in BINS],
                        trainable_params=3000,
                        axes=ax,
                        adapter_dir="adapter",
                        provenance=[
                            Provenance(task, "train", "local:x", fallback_of="hub:y/train")
                        ],
                    )
                )
    recs.append(make_record("dora", "synth_math", 0, status="failed"))
    return write_run(tmp_path / "run", recs)


class FakeNara(types.ModuleType):
    def __init__(self):
        super().__init__("methods.nara")
        self.calls = []

    def core_trajectory(self, adapter_dir, ts):
        self.calls.append(adapter_dir)
        r = 4
        return np.stack([np.eye(r) + t * np.diag(np.arange(r)) for t in ts])

    def update_norms(self, adapter_dir, ts):
        return {"q_proj": 1 + np.asarray(ts), "v_proj": 2 - np.asarray(ts)}


@pytest.fixture
def fake_nara(monkeypatch):
    fake = FakeNara()
    monkeypatch.setitem(sys.modules, "methods.nara", fake)
    monkeypatch.setattr(methods, "nara", fake, raising=False)
    return fake


def test_report_writes_markdown_csvs_and_every_plot(tmp_path, fake_nara):
    run = _grid(tmp_path, steps=True)
    md = build_report([run], tmp_path / "out")
    out = md.parent
    text = md.read_text()
    for name in (
        "noise_loss.png",
        "noise_loss_diff.png",
        "steps.png",
        "pareto.png",
        "nara_core.png",
        "nara_update_norms.png",
    ):
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 2000, name
        assert f"]({name})" in text
    for name in (
        "main_steps=8.csv",
        "main_steps=16.csv",
        "costs.csv",
        "stats_steps=8.csv",
        "failures.csv",
        "stats_long.csv",
        "results.parquet",
    ):
        assert (out / name).stat().st_size > 0, name
    # the adapter is resolved against the cell folder
    assert fake_nara.calls and all(
        p.name == "adapter" and p.parent.parent.name == "cells" for p in fake_nara.calls
    )
    assert "failed (1 of 2)" in text  # dora's failed cell is shown
    assert "**Fallback data**" in text
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_nara_plots_are_skipped_with_a_note_when_methods_nara_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "methods.nara", None)
    monkeypatch.delattr(methods, "nara", raising=False)
    md = build_report([_grid(tmp_path)], tmp_path / "out")
    text = md.read_text()
    assert not (md.parent / "nara_core.png").exists()
    assert not (md.parent / "nara_update_norms.png").exists()
    assert (md.parent / "noise_loss.png").exists() and (md.parent / "pareto.png").exists()
    assert "NaRA core plots skipped: methods.nara unavailable (ModuleNotFoundError" in text


def test_nara_plots_are_skipped_with_a_note_when_methods_nara_raises(tmp_path, monkeypatch):
    fake = FakeNara()

    def broken(adapter_dir, ts):
        raise FileNotFoundError("no adapter weights")

    fake.core_trajectory = broken
    fake.update_norms = broken
    monkeypatch.setitem(sys.modules, "methods.nara", fake)
    monkeypatch.setattr(methods, "nara", fake, raising=False)
    data = load_report_data([_grid(tmp_path)])
    paths, notes = plots.plot_nara(data.records, data.layout, tmp_path)
    assert paths == [] and list(tmp_path.glob("*.png")) == []
    assert len(notes) == 2  # core and norms of the one NaRA series (one adapter represents it)
    assert all("skipped (FileNotFoundError: no adapter weights)" in n for n in notes)


def test_steps_plot_only_when_several_steps(tmp_path):
    one = load_report_data([_grid(tmp_path / "a")])
    assert plots.plot_steps(one.frame, one.layout, tmp_path) is None
    several = load_report_data([_grid(tmp_path / "b", steps=True)])
    path = plots.plot_steps(several.frame, several.layout, tmp_path)
    assert path.name == "steps.png" and path.read_bytes().startswith(PNG)


@pytest.mark.parametrize("kind", ["empty", "foreign", "missing", "schema"])
def test_report_of_a_bad_folder_fails_with_one_clear_line(tmp_path, kind):
    d = tmp_path / "d"
    if kind == "empty":
        d.mkdir()
    elif kind == "foreign":
        d.mkdir()
        (d / "README.md").write_text("# not a run")
        (d / "cells").mkdir()
        (d / "cells" / "x").mkdir()
        (d / "cells" / "x" / "data.csv").write_text("a,b")
    elif kind == "schema":
        write_run(d, [make_record()])
        p = next(d.glob("cells/*/record.json"))
        data = json.loads(p.read_text())
        data["schema_version"] = 0
        p.write_text(json.dumps(data))
    with pytest.raises(BenchError) as e:
        build_report([d], tmp_path / "out")
    msg = str(e.value)
    assert "\n" not in msg and str(d) in msg
    assert {
        "empty": "empty",
        "foreign": "no result records",
        "missing": "no such folder",
        "schema": "schema version 0",
    }[kind] in msg
    assert not (tmp_path / "out" / "report.md").exists()


def test_unknown_baseline_is_a_clear_error(tmp_path):
    with pytest.raises(BenchError, match="baseline 'lorra' is not a method of these runs"):
        build_report([_grid(tmp_path)], tmp_path / "out", baseline="lorra")


def test_preset_section_compares_focus_values_with_the_reference(tmp_path, fake_nara):
    axes = [{"nara.c_scale": c} for c in (0.01, 0.05, 0.1, 0.2)]
    md = build_report(
        [_grid(tmp_path, nara_axes=axes)], tmp_path / "out", preset="nara-cscale", make_plots=False
    )
    text = md.read_text()
    assert "## Ablation: core scale c_scale" in text
    assert "nara (nara.c_scale=0.05)" in text
    assert "Paired difference to nara.c_scale=0.1" in text
    assert "The main table above has one row per `nara.c_scale` value." in text
    assert text.index("nara (nara.c_scale=0.01)") < text.index("nara (nara.c_scale=0.2)")
    assert (md.parent / "focus_stats.csv").read_text().count("\n") == 4  # header + 3 values


def test_grid_yaml_in_the_run_folder_adds_its_section(tmp_path, fake_nara):
    run = _grid(tmp_path, steps=True)
    (run / "grid.yaml").write_text(
        "methods: [lora, nara]\ntasks: [synth_math]\nsteps: [8, 16]\n"
        "report: {section: Steps scaling here, focus_axis: steps}\n"
    )
    text = build_report([run], tmp_path / "out", make_plots=False).read_text()
    assert "## Steps scaling here" in text
    assert "lora (steps=8)" in text and "nara (steps=16)" in text


def test_main_table_text_for_the_terminal(tmp_path):
    text = main_table_text([_grid(tmp_path)], width=160)
    assert "Main results" in text
    assert "50.0 ± 0.0" in text and "(n=2)" not in text  # the count only where a seed is missing
    assert "failed (1 of 2)" in text
    assert "\x1b[" not in text


def test_missing_baseline_method_is_a_note_not_an_error(tmp_path):
    run = write_run(
        tmp_path / "run", [make_record("nara", "synth_math", s, [1, 0]) for s in (0, 1)]
    )
    text = build_report([run], tmp_path / "out", make_plots=False).read_text()
    assert "The baseline method 'lora' is not in these runs" in text
    assert "Baseline method 'lora' is not in this group: no statistics." in text
    assert "50.0 ± 0.0 (n=2)" in text


def test_environment_names_the_cpu_kernels_and_warns_when_they_differ(tmp_path):
    """Training rounds differently under AVX2 and AVX512 kernels, so a report mixing them says so."""
    recs = [make_record("lora", "synth_math", s, [1, 0, 1, 1]) for s in range(2)]
    recs[0].environment.cpu_kernels = "AVX2"
    recs[1].environment.cpu_kernels = "AVX512"
    text = build_report([write_run(tmp_path / "mixed", recs)], tmp_path / "a").read_text()
    assert "- CPU kernels (cells run on the CPU): AVX2, AVX512" in text
    assert "more than one CPU kernel set" in text
    recs[0].environment.cpu_kernels = "AVX512"
    text = build_report([write_run(tmp_path / "same", recs)], tmp_path / "b").read_text()
    assert "- CPU kernels (cells run on the CPU): AVX512" in text
    assert "more than one CPU kernel set" not in text


def test_environment_names_the_base_weights_and_warns_when_one_model_mixes_them(tmp_path):
    """Two records of model 'tiny' trained on differently pretrained bases compare different
    models: the report lists each base digest per model name and warns."""
    recs = [make_record("lora", "synth_math", s, [1, 0, 1, 1]) for s in range(2)]
    recs[0].config["base"] = {"family": "tiny", "source": "/a", "weights": "aaaaaaaaaaaa"}
    recs[1].config["base"] = {"family": "tiny", "source": "/b", "weights": "bbbbbbbbbbbb"}
    model = recs[0].config["model"]
    text = build_report([write_run(tmp_path / "mixed", recs)], tmp_path / "a").read_text()
    assert f"{model}: aaaaaaaaaaaa (1 cells), bbbbbbbbbbbb (1 cells)" in text
    assert f"**warning**: {model} stands for more than one base" in text
    recs[1].config["base"] = dict(recs[0].config["base"], source="/moved")  # same bytes elsewhere
    text = build_report([write_run(tmp_path / "same", recs)], tmp_path / "b").read_text()
    assert f"{model}: aaaaaaaaaaaa (2 cells)" in text and "more than one base" not in text


def test_environment_warns_when_the_records_mix_versions_of_torch(tmp_path):
    recs = [make_record("lora", "synth_math", s, [1, 0, 1, 1]) for s in range(2)]
    recs[0].environment.packages = {"torch": "2.13.0", "pandas": "3.1.1"}
    recs[1].environment.packages = {"torch": "2.13.0", "pandas": "3.2.0"}  # reporting only
    text = build_report([write_run(tmp_path / "same", recs)], tmp_path / "a").read_text()
    assert "more than one version of" not in text
    recs[1].environment.packages = {"torch": "2.14.0", "pandas": "3.1.1"}
    text = build_report([write_run(tmp_path / "mixed", recs)], tmp_path / "b").read_text()
    assert "more than one version of torch, which compute the model" in text


def test_a_task_scored_under_settings_no_axis_separates_is_flagged(tmp_path):
    """Two runs made with another eval.gen_length, reported together: their scores sit side by
    side in one table, which the footnotes say; a grid axis over it separates them instead."""
    lora = make_record("lora", "synth_math", 0, [1, 0, 1, 1], eval_cfg={"gen_length": 16})
    nara = make_record("nara", "synth_math", 0, [1, 1, 1, 1], eval_cfg={"gen_length": 32})
    text = build_report([write_run(tmp_path / "mixed", [lora, nara])], tmp_path / "a").read_text()
    assert "synth_math was scored under different settings" in text
    assert "(eval.gen_length 16 / 32)" in text
    axis = {"eval.gen_length": 16}
    lora = make_record(
        "lora", "synth_math", 0, [1, 0, 1, 1], eval_cfg={"gen_length": 16}, axes=axis
    )
    nara = make_record(
        "nara",
        "synth_math",
        0,
        [1, 1, 1, 1],
        eval_cfg={"gen_length": 32},
        axes={"eval.gen_length": 32},
    )
    text = build_report([write_run(tmp_path / "axis", [lora, nara])], tmp_path / "b").read_text()
    assert "different settings" not in text
    lora = make_record("lora", "synth_math", 0, [1, 0, 1, 1])
    nara = make_record("nara", "synth_math", 0, [1, 1, 1, 1])
    nara.config["train"] = {**nara.config["train"], "lr": 2e-3}
    text = build_report([write_run(tmp_path / "lr", [lora, nara])], tmp_path / "c").read_text()
    assert "synth_math was trained under different settings" in text and "train.lr" in text


def test_the_base_summary_digests_the_files_not_the_folder():
    from harness.run.adapter_stamp import base_summary

    identity = {"family": "tiny", "source": "/a", "config_sha256": "c", "files": {"w": "1"}}
    digest = base_summary(identity)["weights"]
    assert len(digest) == 12 and base_summary({**identity, "source": "/b"})["weights"] == digest
    assert base_summary({**identity, "files": {"w": "2"}})["weights"] != digest
    assert base_summary({"family": "llada", "source": "GSAI-ML/x"})["weights"] is None


def test_terminal_line_counts_the_comparisons_whose_seeds_disagree(tmp_path):
    recs = [
        make_record("base", "synth_math", 0, [0, 0, 0, 0], rank=None, trainable_params=0),
        make_record("lora", "synth_math", 0, [1, 0, 0, 0]),
        make_record("nara", "synth_math", 0, [1, 1, 0, 0]),  # +25
        make_record("lora", "synth_math", 1, [1, 1, 1, 0]),
        make_record("nara", "synth_math", 1, [1, 0, 0, 0]),  # -50: the seeds disagree
        make_record("dora", "synth_math", 0, [1, 1, 0, 0]),
        make_record("dora", "synth_math", 1, [1, 1, 1, 1]),  # +25, +25
    ]
    md = build_report([write_run(tmp_path / "run", recs)], tmp_path / "out")
    line = seeds_disagree_line(md)
    assert line.startswith("the seeds disagree in sign on 1 of 2 comparisons with lora")
    assert "nara" in md.read_text().split("seed by seed")[1]
    agree = [r for r in recs if r.method != "nara"]
    md = build_report([write_run(tmp_path / "agree", agree)], tmp_path / "out2")
    assert seeds_disagree_line(md) is None
