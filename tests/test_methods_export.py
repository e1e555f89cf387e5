"""Adapters honest outside bench: stock peft refuses static-core and NaRA folders with a message
naming bench's loader; ``bench export`` writes plain peft LoRA folders that stock peft loads to
the same logits as bench's own loader (static core at every level, NaRA at the chosen one)."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from peft import PeftConfig, PeftModel

from harness.ground.errors import BenchError
from harness.models.tiny import TinyDLLM, TinyDLLMConfig
from methods import load_adapter
from methods.export import export_adapter
from methods.peft_guard import is_bench_only
from results.schema import Record
from results.store import write_record
from tests.test_methods_io import LEVELS, ids, make_dlm, trained

CORE_METHODS = ["static_core", "nara"]


def stock_base() -> TinyDLLM:
    torch.manual_seed(0)  # make_dlm(seed=0) draws the same base weights
    return TinyDLLM(TinyDLLMConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2))


def stock_logits(folder) -> torch.Tensor:
    model = PeftModel.from_pretrained(stock_base(), str(folder)).eval()
    with torch.no_grad():
        return model(input_ids=ids()).logits


def bench_logits(folder, level: torch.Tensor) -> torch.Tensor:
    dlm = make_dlm()
    load_adapter(dlm, folder)
    dlm.eval()
    with torch.no_grad():
        return dlm(ids(), level)


@pytest.mark.parametrize("method", CORE_METHODS)
def test_stock_peft_refuses_a_core_adapter_and_names_bench_loader(method, tmp_path):
    _, adapter = trained(method)
    adapter.save(tmp_path)
    assert is_bench_only(tmp_path)
    for load in (
        lambda: PeftModel.from_pretrained(stock_base(), str(tmp_path)),
        lambda: PeftConfig.from_pretrained(str(tmp_path)),
        lambda: stock_base().load_adapter(str(tmp_path)),  # transformers' integration
    ):
        with pytest.raises(KeyError) as err:
            load()
        message = str(err.value)
        assert "methods.load_adapter" in message and "bench export" in message
        assert f"bench {method} adapter, not a plain LoRA" in message
    # bench's own loader still reads it exactly (see also test_methods_io)
    bench_logits(tmp_path, LEVELS)


@pytest.mark.parametrize("sharing", ["global", "module_type", "layer"])
def test_static_core_export_equals_bench_at_every_level(sharing, tmp_path):
    dlm, adapter = trained("static_core", core_sharing=sharing)
    assert len(adapter.bank.cores) == {"global": 1, "module_type": 4, "layer": 8}[sharing]
    adapter.save(tmp_path / "a")
    done = export_adapter(tmp_path / "a", tmp_path / "plain")
    assert done.method == "static_core" and done.level is None and done.layers == 8
    assert not is_bench_only(tmp_path / "plain")
    got = stock_logits(tmp_path / "plain")
    for level in (LEVELS, LEVELS.flip(0), torch.zeros(4), torch.ones(4)):
        torch.testing.assert_close(got, bench_logits(tmp_path / "a", level), rtol=0, atol=1e-5)
    # the core was not the identity: plain LoRA with the unfolded B gives another model
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    config["peft_type"] = "LORA"
    (tmp_path / "a" / "adapter_config.json").write_text(json.dumps(config))
    assert (stock_logits(tmp_path / "a") - got).abs().max() > 1e-3
    # and bench loads the exported folder as plain LoRA, to the same logits
    torch.testing.assert_close(bench_logits(tmp_path / "plain", LEVELS), got, rtol=0, atol=1e-6)


@pytest.mark.parametrize("level", [0.0, 0.3, 1.0])
def test_nara_export_equals_bench_at_the_chosen_level(level, tmp_path):
    _, adapter = trained("nara")
    adapter.save(tmp_path / "a")
    export_adapter(tmp_path / "a", tmp_path / "plain", level=level)
    got = stock_logits(tmp_path / "plain")
    at_level = bench_logits(tmp_path / "a", torch.full((4,), level))
    torch.testing.assert_close(got, at_level, rtol=0, atol=1e-5)
    other = bench_logits(tmp_path / "a", torch.full((4,), 0.65))
    assert (got - other).abs().max() > 1e-3  # NaRA's update really depends on the level
    record = json.loads((tmp_path / "plain" / "bench_method.json").read_text())
    assert record["method"] == "lora" and record["exported_from"]["level"] == level


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_lora_and_dora_export_as_they_are(method, tmp_path):
    _, adapter = trained(method)
    adapter.save(tmp_path / "a")
    export_adapter(tmp_path / "a", tmp_path / "plain")
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
    torch.testing.assert_close(
        stock_logits(tmp_path / "plain"), bench_logits(tmp_path / "a", LEVELS), rtol=0, atol=1e-6
    )


def test_export_refusals_are_one_clear_line(tmp_path):
    _, nara = trained("nara")
    nara.save(tmp_path / "nara")
    _, lora = trained("lora")
    lora.save(tmp_path / "lora")
    _, density = trained("nara", conditioning="density")
    density.save(tmp_path / "density")
    cases = [
        (tmp_path / "nara", None, "pass --level t"),
        (tmp_path / "nara", 1.5, r"--level must be in \[0, 1\]"),
        (tmp_path / "lora", 0.5, "--level is only for NaRA and binned_lora adapters"),
        (tmp_path / "density", 0.5, "conditioned on the mask density"),
    ]
    for folder, level, message in cases:
        with pytest.raises(BenchError, match=message):
            export_adapter(folder, tmp_path / "out", level)
        assert not (tmp_path / "out").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(BenchError, match="already exists"):
        export_adapter(tmp_path / "lora", tmp_path / "full")


def test_bench_export_command_takes_a_cell_folder(tmp_path, monkeypatch, capsys):
    from tests.test_runner import run_cli

    _, adapter = trained("nara")
    cell = tmp_path / "cell"
    adapter.save(cell / "adapter")
    config = {"model": "tiny", "method": "nara", "task": "synth_math", "seed": 0}
    write_record(cell, Record(cell_id="c", status="done", config=config, adapter_dir="adapter"))
    code, _, err = run_cli(["export", "--adapter", str(cell), "--out", "x"], monkeypatch, capsys)
    assert code == 2 and "pass --level t" in err and len(err.strip().splitlines()) == 1
    out = tmp_path / "plain"
    args = ["export", "--adapter", str(cell), "--out", str(out), "--level", "0.25"]
    code, stdout, _ = run_cli(args, monkeypatch, capsys)
    assert code == 0 and "nara adapter at noise level 0.25" in stdout
    torch.testing.assert_close(
        stock_logits(out), bench_logits(cell / "adapter", torch.full((4,), 0.25)), atol=1e-5, rtol=0
    )
    assert sys.argv[0] == "bench"
