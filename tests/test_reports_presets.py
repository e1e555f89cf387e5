"""The shipped ablation presets and the grid-file validation."""

import pytest

from harness.ground.errors import BenchError
from reports.presets import list_presets, load_grid_file, load_preset, validate_grid

EXPECTED = {
    "nara-main",
    "nara-conditioning",
    "nara-embedding",
    "nara-cscale",
    "rank-sweep",
    "lambda-definition",
    "steps-scaling",
    "nara-binned",
}
OTHER = {"demo", "aa-check"}  # the default demo grid and the calibration check
L2D_PRESETS = {"l2d-steps", "l2d-schedule", "l2d-main"}  # on tiny-ar: tests/test_l2d.py
# the rank-one LoRA theory sandbox's (tests/test_theory_sandbox.py)
THEORY = {"lora-theory-noise", "lora-theory-mismatch", "lora-theory-active"}
# published evaluation settings on real models: tests/test_presets_published.py
PUBLISHED = {
    "llada-instruct-gsm8k",
    "llada-instruct-humaneval",
    "llada-instruct-mbpp",
    "llada15-gsm8k",
    "llada15-humaneval",
    "llada15-mbpp",
    "dream-base-gsm8k",
    "dream-base-humaneval",
}


def test_every_preset_loads_and_names_a_valid_focus_axis():
    assert set(list_presets()) == EXPECTED | OTHER | THEORY | L2D_PRESETS | PUBLISHED
    for name in sorted(EXPECTED):
        g = load_preset(name)
        assert g["name"] == name and g["model"] == "tiny"
        assert g["seeds"] == [0, 1, 2]
        assert g["report"]["section"]
        assert set(g["tasks"]) == {"synth_math", "synth_choice", "synth_code"}


def test_preset_contents():
    assert load_preset("nara-main")["methods"] == ["lora", "dora", "static_core", "nara"]
    assert load_preset("nara-conditioning")["set"] == {
        "nara.conditioning": ["constant", "noise", "density"]
    }
    assert load_preset("nara-embedding")["set"]["nara.embedding"] == ["fourier", "mlp", "raw"]
    cs = load_preset("nara-cscale")
    assert cs["set"]["nara.c_scale"] == [0.01, 0.05, 0.1, 0.2] and cs["report"]["reference"] == 0.1
    rs = load_preset("rank-sweep")
    assert rs["ranks"] == [4, 8, 16, 32] and rs["methods"] == ["lora", "nara"]
    assert load_preset("lambda-definition")["set"] == {"eval.noise_level": ["response", "sequence"]}
    assert load_preset("steps-scaling")["steps"] == [4, 8, 16]
    binned = load_preset("nara-binned")
    assert binned["methods"] == ["lora", "nara", "binned_lora"]
    assert binned["set"] == {"binned_lora.bins": [2, 4, 8]} and binned["report"]["reference"] == 4


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(
        BenchError,
        match="unknown preset 'nara-mian'; available: aa-check, demo, .*lambda-definition",
    ):
        load_preset("nara-mian")


@pytest.mark.parametrize(
    "grid,msg",
    [
        ({"methods": ["lora"]}, "missing required key 'tasks'"),
        ({"methods": [], "tasks": ["a"]}, "'methods' must be a non-empty list"),
        ({"methods": ["lora"], "tasks": ["a"], "seed": [0]}, r"unknown key\(s\) \['seed'\]"),
        ({"methods": ["lora"], "tasks": ["a"], "ranks": [0]}, "positive integers"),
        ({"methods": ["lora"], "tasks": ["a"], "set": {"c_scale": [1]}}, "must be dotted"),
        ({"methods": ["lora"], "tasks": ["a"], "set": {"nara.c_scale": []}}, "non-empty list"),
        ({"methods": ["lora", "lora"], "tasks": ["a"]}, "lists a value twice"),
        (
            {"methods": ["lora"], "tasks": ["a"], "report": {"focus_axis": "nara.x"}},
            "not an axis of this grid",
        ),
    ],
)
def test_bad_grids_fail_with_one_line(grid, msg):
    with pytest.raises(BenchError, match=msg):
        validate_grid(grid, "g.yaml")


def test_malformed_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "grid.yaml"
    p.write_text("methods: [lora\ntasks: x\n")
    with pytest.raises(BenchError, match=r"grid\.yaml: malformed YAML at line \d"):
        load_grid_file(p)


def _fake_run(grid, run_dir):
    """Records shaped like the runner's for this grid: ``nara.*`` axes only on NaRA cells,
    other ``set`` axes on every cell, sampling steps as several scores of one cell."""
    import itertools

    from results.testing import make_record, write_run

    recs = []
    keys = list(grid["set"])
    for method, task, seed, rank in itertools.product(
        grid["methods"], grid["tasks"][:2], grid["seeds"][:2], grid.get("ranks", [8])
    ):
        applies = [k for k in keys if not k.startswith("nara.") or method == "nara"]
        for values in itertools.product(*(grid["set"][k] for k in applies)):
            ex = [int((seed + i + len(recs)) % 3 == 0) for i in range(6)]
            correct = {s: ex for s in grid["steps"]} if "steps" in grid else ex
            recs.append(
                make_record(
                    method,
                    task,
                    seed,
                    correct,
                    rank=rank,
                    axes=dict(zip(applies, values, strict=True)),
                )
            )
    return write_run(run_dir, recs)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_report_builds_the_section_of_every_preset(tmp_path, name):
    from reports.build import build_report

    grid = load_preset(name)
    run = _fake_run(grid, tmp_path / "run")
    text = build_report([run], tmp_path / "out", preset=name, make_plots=False).read_text()
    assert f"## {grid['report']['section']}" in text
    focus = grid["report"].get("focus_axis")
    if focus is not None:
        values = grid["set"].get(focus) or grid.get("ranks") or grid.get("steps")
        for v in values:
            assert f"{focus}={v}" in text, (focus, v)
    if "reference" in grid["report"]:
        assert f"Paired difference to {focus}={grid['report']['reference']}" in text


def test_aa_check_preset_reports_seed_pairs_of_one_method(tmp_path):
    from reports.build import build_report

    grid = load_preset("aa-check")
    assert grid["methods"] == ["lora"] and len(grid["seeds"]) >= 5
    assert grid["report"]["check"] == "aa"
    grid = {**grid, "seeds": [0, 1, 2]}  # _fake_run keeps two seeds: one pair per task
    run = _fake_run(grid, tmp_path / "run")
    text = build_report([run], tmp_path / "out", preset="aa-check", make_plots=False).read_text()
    section = text.split("## Calibration: A/A check")[1]
    assert "| lora | synth_math_unseen | 1 |" in section and "| all | all | 2 |" in section
