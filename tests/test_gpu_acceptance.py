"""benchmarks/gpu_acceptance.sh --cpu: the GPU acceptance run end to end at reduced shapes on the
CPU, so the one prepared command is known to work before a GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.released_models import require_fixtures

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_acceptance_cpu_run_writes_every_section(tmp_path):
    require_fixtures()
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_acceptance.sh"), str(out), "--cpu"],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    sections = summary["sections"]
    assert summary["mode"] == "cpu"
    tests = sections["tests"]
    assert tests["tests"] >= 2 and tests["failures"] == tests["errors"] == 0
    for key, family in (("llada_train", "llada"), ("dream_train", "dream")):
        rows = sections[key]
        assert [(r["method"], r["checkpointing"]) for r in rows] == [
            ("lora", False),
            ("lora", True),
            ("nara", False),
            ("nara", True),
        ]
        for r in rows:
            assert r["family"] == family and r["step_s"] > 0 and r["predicted_step_s"] > 0
            assert r["peak_gib"] > 0 and r["predicted_peak_gib"] > 0
        assert rows[2]["adapter_params"] > rows[0]["adapter_params"]  # NaRA's core and hypernet
    sampler = sections["sampler"]
    assert {(r["gen"], r["batch"], r["cache"]) for r in sampler["rows"]} == {
        (g, b, c) for g in (32, 64) for b in (1, 2) for c in ("none", "prefix", "dual")
    }
    assert all(r["tokens_per_s"] > 0 for r in sampler["rows"])
    assert [a["window"] for a in sampler["cache_agreement"]] == ["prefix", "dual"]
    # fp32 on the CPU: the cached window equals the uncached forward to rounding
    assert all(a["max_diff"] < 1e-3 and a["argmax"] == 1.0 for a in sampler["cache_agreement"])
    markdown = (out / "summary.md").read_text()
    assert "## (b) LLaDA-8B shapes" in markdown and "## (c) sampler" in markdown
