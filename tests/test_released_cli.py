"""``bench run`` end to end on a folder built from the released LLaDA code, as a user would run it
on a downloaded LLaDA-8B folder (tiny random weights here: the plumbing, not the accuracy)."""

from __future__ import annotations

import os
import sys

import pytest

from results.store import load_records

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bench_run_on_a_released_llada_folder(llada_folder, tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # the runner's thread count; a busy CI box
    out = tmp_path / "run"
    args = ["run", "--model", str(llada_folder), "--methods", "lora", "--tasks", "synth_math"]
    args += ["--limit", "2", "--steps", "4", "--out", str(out), "--no-progress"]
    for setting in (
        "train.steps=2",
        "train.batch_size=2",
        "train.grad_accum=1",
        "train.val_examples=2",
        "train.noise_bins=2",
        "train.max_length=96",
        "eval.gen_length=8",
        "eval.batch_size=2",
    ):
        args += ["--set", setting]
    monkeypatch.setattr(sys, "argv", ["bench", *args])
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    assert code == 0, capsys.readouterr().err
    (record,) = load_records([out])
    assert record.status == "done" and record.config["model"] == str(llada_folder)
    assert record.environment.model_repairs == [
        "llada:post_init",
        "llada:tie_weights_signature",
        "llada:config.use_cache",
    ]
    assert record.scores and record.scores[0].n == 2
    assert (out / "cells" / record.cell_id / "adapter" / "adapter_model.safetensors").is_file()
