"""Bad settings stop a run before any model loads: one line naming what is valid, exit 2,
nothing written. Values the optimizer would take silently (grad_clip=0 zeroes every update)
or that a sampler would refuse only after training are the hard cases."""

from __future__ import annotations

import pytest

from harness.config.cell import EvalConfig, TrainConfig
from harness.ground.errors import BenchError
from harness.run.cell import CellRequest
from harness.run.grid import make_grid, sampling_steps, sampling_variants
from harness.run.preflight import check_settings, process_problems


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_HUB", "0")
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("warmup_ratio", 1.5, r"warmup_ratio must be in \[0, 1\)"),
        ("warmup_ratio", -0.1, r"warmup_ratio must be in \[0, 1\)"),
        ("epochs", 0, "epochs must be positive"),
        ("grad_clip", 0.0, "grad_clip must be positive"),
        ("weight_decay", -0.01, "weight_decay must be >= 0"),
        ("eps", -1e-8, "eps must be >= 0"),
        ("beta1", 1.0, r"beta1 must be in \[0, 1\)"),
        ("beta2", -0.5, r"beta2 must be in \[0, 1\)"),
        ("val_examples", -1, "val_examples must be >= 0"),
        ("train_limit", 0, "train_limit must be a positive number"),
        ("masking", "uniform", "masking must be one of bernoulli, exact"),
        ("normalize", "sum", "normalize must be one of answer_length, token"),
    ],
)
def test_training_values_outside_their_range_fail_at_construction(field, value, words):
    with pytest.raises(BenchError, match=words):
        TrainConfig(**{field: value})


def test_training_values_at_their_edges_are_accepted():
    low = TrainConfig(warmup_ratio=0.0, weight_decay=0.0, eps=0.0, beta1=0.0, val_examples=0)
    assert (low.warmup_ratio, low.weight_decay, low.eps, low.beta1, low.val_examples) == (
        0.0, 0.0, 0.0, 0.0, 0
    )  # fmt: skip
    other = TrainConfig(epochs=0.5, grad_clip=float("inf"), train_limit=1, masking="exact")
    assert other.grad_clip == float("inf") and other.train_limit == 1 and other.masking == "exact"


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("protocol", "likelihood", "protocol must be one of auto, gen, loglik"),
        ("limit", 0, "limit must be a positive number"),
        ("gen_length", 0, "gen_length must be positive"),
        ("block_length", -4, "block_length must be positive"),
        ("batch_size", 0, "batch_size must be positive"),
        ("mc_num", 0, "mc_num must be positive"),
        ("mc_batch_size", 0, "mc_batch_size must be positive"),
        ("temperature", -0.1, "temperature must be >= 0"),
        ("cfg_scale", -1.0, "cfg_scale must be >= 0"),
    ],
)
def test_evaluation_values_outside_their_range_fail_at_construction(field, value, words):
    with pytest.raises(BenchError, match=words):
        EvalConfig(**{field: value})


def _requests(spec: dict) -> list[CellRequest]:
    grid = make_grid(spec)
    return [
        CellRequest(cell, sampling_steps(grid, cell), sampling_variants(grid, cell))
        for cell in grid.cells()
    ]


BASE = {"methods": ["lora"], "tasks": ["synth_math"], "seeds": [0]}


@pytest.mark.parametrize(
    "extra, words",
    [
        ({"set": {"eval.gen_length": [10]}}, "gen_length 10 is not divisible by block_length 4"),
        ({"set": {"eval.remasking": ["lowest"]}}, "remasking 'lowest' is not one of"),
        ({"set": {"eval.schedule": ["cubic"]}}, "schedule 'cubic' is not one of"),
        ({"steps": [2]}, "steps 2 is fewer than the number of blocks 4"),
        ({"set": {"eval.protocol": ["loglik"]}}, "task 'synth_math' has no protocol 'loglik'"),
        (  # only the second sampler variant is refused: every variant is asked
            {"set": {"eval.parallel": ["none", "threshold:0.9"], "eval.remasking": ["random"]}},
            "parallel=threshold:0.9 ranks tokens by confidence",
        ),
    ],
)
def test_sampler_settings_refused_after_training_stop_the_run_before_it(offline, extra, words):
    requests = _requests({**BASE, **extra})
    with pytest.raises(BenchError, match=words):
        check_settings(requests)


def test_the_default_grid_and_bare_cells_pass_the_preflight(offline):
    requests = _requests({**BASE, "steps": [4, 16]})
    assert process_problems(requests) == []
    assert process_problems([r.cell for r in requests]) == []  # a cell stands for its own


def test_likelihood_settings_are_asked_only_where_a_task_scores_by_likelihood(offline):
    loglik = {"methods": ["lora"], "tasks": ["synth_choice"], "seeds": [0]}
    spec = {**loglik, "set": {"eval.protocol": ["loglik"], "eval.mc_num": [48]}}
    with pytest.raises(BenchError, match="mc_num 48 must be a multiple of batch_size 32"):
        check_settings(_requests(spec))
    assert process_problems(_requests({**BASE, "set": {"eval.mc_num": [48]}})) == []


def test_a_grid_file_reads_numbers_as_the_command_line_does(offline):
    # YAML 1.1 leaves 1e-4 a string; the grid reads it as a number.
    cell = make_grid({**BASE, "set": {"train.lr": ["1e-4"], "eval.cfg_scale": "0.5"}}).cells()[0]
    assert cell.train.lr == 1e-4 and cell.eval.cfg_scale == 0.5


@pytest.mark.parametrize(
    "setting, words",
    [
        ("train.lr=fast", "train.lr must be a number, got 'fast'"),
        ("train.steps=2.5", "train.steps must be an integer or none, got 2.5"),
        ("eval.logits_eos_inf=1", "eval.logits_eos_inf must be true or false, got 1"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_type_the_field_takes(offline, setting, words):
    from harness.run.grid import parse_set

    with pytest.raises(BenchError, match=words):
        make_grid({**BASE, "set": parse_set([setting])}).cells()


@pytest.mark.parametrize(
    "setting", ["train.grad_clip=0", "eval.gen_length=10", "train.warmup_ratio=1.5"]
)
def test_bench_run_stops_with_one_line_and_writes_nothing(
    offline, tmp_path, monkeypatch, bench_run, setting
):
    ran = []
    monkeypatch.setattr(
        "harness.run.executors.worker.run_cell", lambda *a, **k: ran.append(a) or 1 / 0
    )
    out = tmp_path / "run"
    args = ["--methods", "lora", "--tasks", "synth_math", "--limit", "2", "--set", setting]
    code, err = bench_run([*args, "--out", str(out)])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert setting.split("=")[0].split(".")[1] in err
    assert not ran and not out.exists()


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_a_seed_outside_numpys_range_fails_when_the_grid_is_built(offline, seed):
    with pytest.raises(BenchError, match=r"seeds must be integers in \[0, 2\*\*32\)"):
        make_grid({**BASE, "seeds": [seed]})


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("seed", -1, r"seed must be an integer in \[0, 2\*\*32\)"),
        ("num_heads", 3, "hidden_size 128 is not divisible by num_heads 3"),
        ("batch_size", 0, "batch_size must be positive"),
        ("warmup_steps", -1, "warmup_steps must be >= 0"),
    ],
)
def test_a_tiny_base_config_outside_its_range_fails_before_pretraining(field, value, words):
    from harness.processes.causal.pretrain import CausalPretrainConfig
    from harness.processes.masked.pretrain import PretrainConfig

    for config in (PretrainConfig, CausalPretrainConfig):
        with pytest.raises(BenchError, match=words):
            config(**{field: value})


@pytest.mark.parametrize("key", ["method.rank", "lora.rank"])
def test_a_rank_set_as_a_method_setting_is_refused_for_the_ranks_axis(offline, key):
    # It would replace every --ranks value: two ranks asked, one cell run.
    with pytest.raises(BenchError, match=r"the rank is a grid axis: use --ranks 16"):
        make_grid({**BASE, "ranks": [8, 32], "set": {key: [16]}}).cells()


def test_a_limit_given_twice_is_refused(offline):
    with pytest.raises(BenchError, match="the limit is given twice"):
        make_grid({**BASE, "limit": 10, "set": {"eval.limit": [5]}}).cells()


def test_settings_of_a_method_outside_the_grid_are_named(offline):
    from harness.run.grid import unused_settings

    grid = make_grid({**BASE, "set": {"nara.core_lr_scale": [5.0], "lora.dropout": [0.1]}})
    assert unused_settings(grid) == ["nara.core_lr_scale"]


@pytest.mark.parametrize(
    "extra, words",
    [
        ({"limit": "abc"}, "'limit' must be a positive integer, got 'abc'"),
        ({"limit": 2.5}, "'limit' must be a positive integer, got 2.5"),  # not silently 2
        ({"model": 7}, "'model' must be a model name or folder, got 7"),
    ],
)
def test_a_grid_files_limit_and_model_are_checked(extra, words):
    from reports.presets import validate_grid

    with pytest.raises(BenchError, match=words):
        validate_grid({"methods": ["lora"], "tasks": ["synth_math"], **extra}, "g.yaml")


def test_an_out_path_that_is_a_file_stops_the_run(offline, tmp_path, bench_run, capsys):
    taken = tmp_path / "taken"
    taken.write_text("")
    code, err = bench_run(["--methods", "lora", "--tasks", "synth_math", "--out", str(taken)])
    assert code == 2 and "is a file; a run needs a folder" in err and "Traceback" not in err
