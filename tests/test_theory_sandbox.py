"""The rank-one LoRA theory sandbox: its model, task and method, its grid cells, its presets and
its report sections."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.func import jacrev, vmap

from harness.ground.errors import BenchError
from harness.ground.theory_attention import (
    attention_index,
    attention_output,
    matrix_error,
    rank_one_index,
    rank_one_matrix,
    tied_index,
    tied_matrix,
)
from harness.run.grid import make_grid
from harness.run.theory_cell import pretrained_base
from methods.rank_one_lora import (
    RankOneLoraConfig,
    alignment,
    base_gradient,
    fit_rank_one,
    spectral_start,
)
from methods.rank_one_selection import gradient_scores
from reports.presets import for_model, load_preset
from reports.theory.fit import control_curve, fit_noise
from tasks.attention_lora import AttentionLoraData, generator, label, make_teacher, sample_inputs


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _x(n=5, length=3, d=6, seed=0):
    return torch.randn(n, length, d, generator=torch.Generator().manual_seed(seed))


def test_factored_indices_equal_the_explicit_matrix():
    x, g = _x(), torch.Generator().manual_seed(1)
    w, u = torch.randn(6, 3, generator=g), torch.randn(6, generator=g)
    assert torch.allclose(tied_index(x, w), attention_index(x, tied_matrix(w)), atol=1e-5)
    assert torch.allclose(rank_one_index(x, u), attention_index(x, rank_one_matrix(u)), atol=1e-5)
    # the index of the identity is zero off the diagonal only through x_a^T x_b: check one entry
    h = attention_index(x, torch.eye(6))
    assert h[0, 0, 1] == pytest.approx(float(x[0, 0] @ x[0, 1]) / math.sqrt(6), rel=1e-5)
    assert h[0, 0, 0] == pytest.approx((float(x[0, 0] @ x[0, 0]) - 6) / math.sqrt(6), rel=1e-5)


def test_analytic_gradients_match_autograd():
    x, g = _x(n=7), torch.Generator().manual_seed(2)
    s0 = tied_matrix(torch.randn(6, 3, generator=g))
    u, beta = torch.randn(6, generator=g), 1.3
    h0 = attention_index(x, s0)

    def output(seq, vec):
        return attention_output(seq[None], s0 + rank_one_matrix(vec), beta)[0]

    jac = vmap(jacrev(output, argnums=1), in_dims=(0, None))(x, u)
    assert torch.allclose(gradient_scores(h0, x, u, beta), jac.flatten(1).norm(dim=1), atol=1e-5)

    y = torch.rand(7, 3, 3, generator=g)
    delta = torch.zeros(6, 6, requires_grad=True)
    ((attention_output(x, s0 + delta, beta) - y) ** 2).sum().backward()
    expected = (delta.grad + delta.grad.T) / 2
    assert torch.allclose(base_gradient(h0, x, y, beta), expected, atol=1e-5)


def test_teacher_is_recovered_with_vanishing_error_as_the_sample_ratio_grows(tmp_path):
    errors = []
    for alpha_pre in (0.1, 0.25, 1.0, 4.0):  # n_pre = alpha_pre d^2 at d = 8
        data = AttentionLoraData(d=8, alpha_pre=alpha_pre, pre_steps=500, n_test=10)
        teacher = make_teacher(data, 0)
        s0, _ = pretrained_base(data, teacher, 0, tmp_path / str(alpha_pre))
        errors.append(matrix_error(s0, teacher.s_pre))
    assert errors == sorted(errors, reverse=True), errors
    assert errors[0] > 0.1 and errors[-1] < 1e-6, errors


def test_rank_one_update_from_the_exact_base_finds_u_star():
    data = AttentionLoraData(d=40, alpha_pre=None, alpha_ft=4.0)
    teacher = make_teacher(data, 3)
    x = sample_inputs(data, data.n_ft, 3, "pool")
    y = label(data, x, teacher.s_ft)
    h0 = attention_index(x, teacher.s_pre)
    u = fit_rank_one(h0, x, y, data.beta, RankOneLoraConfig(), generator(3, "init"))
    assert alignment(u, teacher.u_star) > 0.95
    # the spectral start alone already points near u* (gradient descent's first direction)
    assert alignment(spectral_start(h0, x, y, data.beta, 1e-4), teacher.u_star) > 0.8
    # a wrong direction is not aligned: the metric can fail
    assert alignment(torch.randn(40, generator=generator(9, "x")), teacher.u_star) < 0.5


def test_noise_fit_recovers_the_variance_it_was_built_from():
    # curves linear in sqrt(noise), so that the interpolation is exact between grid points
    noises = [0.0, 0.01, 0.04, 0.16]
    curves = [[0.1 + math.sqrt(n) * k for k in (1.0, 0.5, 0.2)] for n in noises]
    target = [0.1 + 0.3 * k for k in (1.0, 0.5, 0.2)]  # the curve at noise 0.09
    assert control_curve(np.array(noises), np.array(curves), 0.09) == pytest.approx(target)
    fit = fit_noise(noises, curves, target)
    assert fit.delta == pytest.approx(0.09, rel=0.02) and fit.rms < 1e-3 and not fit.at_edge
    assert fit_noise(noises, curves, [1.0, 1.0, 1.0]).at_edge


def _cells(name: str):
    return make_grid(for_model(load_preset(name), None)).cells()


def _combos(cells, *keys):
    return {tuple(c.task_config.get(k, c.method_config.get(k)) for k in keys) for c in cells}


def test_presets_expand_to_the_intended_cells():
    import itertools

    for name, keys in {
        "lora-theory-noise": ("alpha_pre", "noise", "alpha_ft"),
        "lora-theory-mismatch": ("alpha_pre", "ridge", "alpha_ft"),
        "lora-theory-active": ("selection", "alpha_ft"),
    }.items():
        grid = load_preset(name)
        cells = _cells(name)
        values = [
            grid["set"][
                f"{'rank_one_lora' if k in ('ridge', 'selection') else 'attention_lora'}.{k}"
            ]
            for k in keys
        ]
        wanted = set(itertools.product(*values))
        assert _combos(cells, *keys) == wanted, name
        assert len(cells) == len(wanted) * len(grid["seeds"]) and len(grid["seeds"]) >= 3
        assert {(c.model, c.method, c.task, c.rank) for c in cells} == {
            ("attention", "rank_one_lora", "attention_lora", 1)
        }
        assert {c.task_config["d"] for c in cells} == {100}
        assert len({c.cell_id for c in cells}) == len(cells)
    active = _cells("lora-theory-active")
    assert {c.method_config["selection"] for c in active} == {"random", "gradient", "excitation"}
    assert None in {c.task_config["alpha_pre"] for c in _cells("lora-theory-noise")}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"set": {"attention_lora.d": [0]}}, "attention_lora.d must be a positive integer"),
        ({"set": {"attention_lora.alpha_ft": [-1]}}, "attention_lora.alpha_ft must be a positive"),
        ({"set": {"attention_lora.alpha_pre": ["x"]}}, "positive number or none"),
        ({"set": {"attention_lora.dim": [5]}}, "unknown setting attention_lora.dim; valid"),
        ({"set": {"rank_one_lora.selection": ["best"]}}, "random, gradient, excitation"),
        ({"set": {"rank_one_lora.ridge": [-1.0]}}, "ridge must be a number >= 0"),
        ({"set": {"train.lr": [0.1]}}, "ignores train.* and eval.*"),
        ({"ranks": [4]}, "rank_one_lora has rank 1"),
        ({"methods": ["lora"]}, "runs only methods rank_one_lora"),
        ({"model": "tiny"}, "rank_one_lora belongs to the 'attention' sandbox"),
    ],
)
def test_bad_sandbox_values_fail_with_one_line(spec, message):
    base = {"model": "attention", "methods": ["rank_one_lora"], "tasks": ["attention_lora"]}
    with pytest.raises(BenchError, match=message.replace("*", r"\*").replace(".", r"\.")) as err:
        make_grid({**base, **spec}).cells()
    assert "\n" not in str(err.value)


def test_bad_axis_on_the_command_line_is_one_line_and_exit_2(monkeypatch, capsys):
    from harness.cli import main

    args = [
        "run",
        "--preset",
        "lora-theory-mismatch",
        "--set",
        "attention_lora.noise=-1",
        "--dry-run",
    ]
    monkeypatch.setattr(sys, "argv", ["bench", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "attention_lora.noise must be a number >= 0" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


TINY_GRID = {
    "model": "attention",
    "methods": ["rank_one_lora"],
    "tasks": ["attention_lora"],
    "seeds": [0, 1],
    "set": {
        "attention_lora.d": [12],
        "attention_lora.n_test": [200],
        "attention_lora.pre_steps": [200],
        "attention_lora.alpha_pre": [None, 0.3],
        "attention_lora.noise": [0.0, 0.05],
        "attention_lora.alpha_ft": [1.0, 4.0],
        "rank_one_lora.steps": [60],
        "rank_one_lora.selection": ["random", "gradient"],
        "rank_one_lora.rounds": [3],
    },
    "report": {"section": "Tiny sandbox", "check": "lora-theory-noise"},
}


def test_a_tiny_sandbox_grid_runs_end_to_end_into_records_and_report(tmp_path, monkeypatch, capsys):
    from harness.cli import main
    from reports.tables import Table
    from reports.theory.sections import theory_section
    from results.store import load_records

    grid_file, out, report = tmp_path / "grid.yaml", tmp_path / "run", tmp_path / "report"
    grid_file.write_text(yaml.safe_dump(TINY_GRID))
    for args in (
        ["run", "--config", str(grid_file), "--out", str(out), "--no-progress"],
        ["report", "--runs", str(out), "--out", str(report), "--baseline", "rank_one_lora"],
    ):
        monkeypatch.setattr(sys, "argv", ["bench", *args])
        with pytest.raises(SystemExit) as exit_:
            main()
        assert exit_.value.code in (0, None), capsys.readouterr().err
    records = load_records([out])
    assert len(records) == 32 and {r.status for r in records} == {"done"}
    metrics = {s.metric for s in records[0].scores}
    assert {"test_error", "alignment", "pre_error"} <= metrics
    assert len(list((out / "sandbox-bases").glob("base-*.pt"))) == 2  # one per seed, cached
    text = (report / "report.md").read_text()
    assert "## Tiny sandbox" in text and "**Assumptions.**" in text
    for png in ("theory_noise_collapse.png", "theory_noise_fit.png", "theory_noise_control.png"):
        assert f"({png})" in text and (report / png).stat().st_size > 10_000
    assert "theory_noise_fit.csv" in text and (report / "theory_noise_fit.csv").is_file()

    def write(table: Table, folder: Path) -> list[str]:
        return [table.title, table.to_markdown()]

    for check, png in (
        ("lora-theory-mismatch", "theory_mismatch.png"),
        ("lora-theory-active", "theory_active.png"),
    ):
        lines = theory_section(records, check, report, write)
        assert f"({png})" in "\n".join(lines) and (report / png).stat().st_size > 10_000
    active = "\n".join(theory_section(records, "lora-theory-active", report, write))
    assert "| 4 | gradient |" in active and "| 1 | random |" in active
