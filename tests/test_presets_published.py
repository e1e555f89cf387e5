"""The presets of published evaluation settings express them exactly: each LLaDA preset's
generation length, block length, step count and two EOS options against the table of LLaDA's
EVAL.md (read from ../shared at test time), and each preset builds cells whose sampler is that
setting (Dream's: Dream's own sampler with Dream's defaults)."""

from __future__ import annotations

import re

import pytest

from harness.processes.masked.evaluate import sampler_config
from harness.run.grid import make_grid
from reports.presets import load_preset
from tests.reference_code import require_reference

# preset -> (EVAL.md table heading it follows, column)
LLADA = {
    "llada-instruct-gsm8k": ("block diffusion sampling", "GSM8k"),
    "llada-instruct-humaneval": ("For **LLaDA-8B-Instruct**", "HumanEval"),
    "llada-instruct-mbpp": ("For **LLaDA-8B-Instruct**", "MBPP"),
    "llada15-gsm8k": ("The evaluation results of **LLaDA 1.5**", "GSM8K"),
    "llada15-humaneval": ("The evaluation results of **LLaDA 1.5**", "HumanEval"),
    "llada15-mbpp": ("The evaluation results of **LLaDA 1.5**", "MBPP"),
}


def _table_after(text: str, heading: str) -> dict[str, dict[str, str]]:
    """The first markdown table after ``heading``: row name -> column -> cell."""
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(
            [c.strip().strip("*").replace("\\\\", "") for c in line.strip().strip("|").split("|")]
        )
    header = rows[0]
    return {r[0]: dict(zip(header[1:], r[1:], strict=True)) for r in rows[2:]}


def _cell(name: str):
    grid = make_grid(load_preset(name))
    (cell,) = grid.cells()
    return grid, cell


@pytest.mark.parametrize("name", sorted(LLADA))
def test_llada_presets_are_eval_md(name):
    text = (require_reference() / "samplers" / "llada" / "EVAL.md").read_text()
    heading, column = LLADA[name]
    table = _table_after(text, heading)
    want = {re.sub(r"[\\\\ ]", "", k).lower(): v[column] for k, v in table.items()}
    grid, cell = _cell(name)
    gen = int(want["gen_length"])
    sampler = sampler_config(cell.eval, grid.steps[0])
    assert (sampler.gen_length, sampler.block_length, sampler.steps) == (
        gen,
        int(want["block_length"]),
        gen,
    )
    assert sampler.logits_eos_inf == (want["logits_eos_inf"] == "True")
    assert sampler.confidence_eos_eot_inf == (want["confidence_eos_eot_inf"] == "True")
    assert (sampler.temperature, sampler.remasking, sampler.parallel) == (
        0.0,
        "low_confidence",
        "none",
    )
    assert cell.method == "base" and cell.eval.template == "chat"
    assert want["internaltoolkit"] in load_preset(name)["report"]["note"]


@pytest.mark.parametrize("name", ["dream-base-gsm8k", "dream-base-humaneval"])
def test_dream_presets_use_dreams_own_sampler(name):
    grid, cell = _cell(name)
    sampler = sampler_config(cell.eval, grid.steps[0])
    assert sampler.is_dream and sampler.remasking == "entropy"
    assert (sampler.gen_length, sampler.block_length, sampler.steps) == (256, 256, 256)
    assert (sampler.alg_temp, sampler.eps, sampler.temperature) == (0.0, 1e-3, 0.0)
