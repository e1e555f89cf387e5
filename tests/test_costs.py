"""Cost before anything runs: architecture numbers, hand-computed FLOPs/memory for a small config,
the fit check refusing a cell that cannot fit, and the dry run for an 8B alias (no hub needed)."""

from __future__ import annotations

import json

import pytest

import harness.costs as costs
from harness.costs.architecture import (
    DREAM_7B,
    LLADA_8B,
    Architecture,
    adapter_params,
    architecture_for,
)
from harness.costs.devices import GIB, device_kind, match_gpu_name, planning_device
from harness.costs.estimate import (
    cell_cost,
    fit_problem,
    forward_flops,
    layer_activation_bytes,
    memory_estimate,
    training_flops,
)
from harness.ground.errors import BenchError
from harness.run.grid import make_grid, sampling_steps
from methods.registry import get_method
from tests.test_runner import run_cli

# layers 2, hidden 8, heads 2 / 1 kv head (head dim 4), SwiGLU 16, vocabulary 10
SMALL = Architecture("small", "generic", 2, 8, 2, 1, 16, 10)


def test_known_architectures_have_the_published_sizes():
    assert LLADA_8B.total_params == 32 * (4 * 4096**2 + 3 * 4096 * 12288 + 2 * 4096) + (
        2 * 126464 * 4096 + 4096
    )
    assert 8.0e9 < LLADA_8B.total_params < 8.05e9
    assert 7.6e9 < DREAM_7B.total_params < 7.63e9  # Qwen2.5-7B: 7.62e9
    assert DREAM_7B.kv_dim == 512 and DREAM_7B.head_dim == 128
    assert architecture_for("llada-8b-instruct") is LLADA_8B
    with pytest.raises(BenchError, match="no architecture known"):
        architecture_for("gpt-17")


def test_adapter_sizes_match_the_release_numbers():
    """NaRA notes: rank 32 on q/k/v/attn_out of LLaDA-8B is ~33.5M LoRA parameters and the
    hypernetwork adds 673,536."""
    lora = get_method("lora").config(rank=32)
    nara = get_method("nara").config(rank=32)
    assert adapter_params(LLADA_8B, "lora", lora) == 32 * 4 * 32 * (4096 + 4096) == 33_554_432
    assert adapter_params(LLADA_8B, "nara", nara) == 33_554_432 + 673_536
    static = get_method("static_core").config(rank=32, core_sharing="module_type")
    assert adapter_params(LLADA_8B, "static_core", static) == 33_554_432 + 4 * 32 * 32
    with pytest.raises(BenchError, match="its linear layers are q_proj"):
        adapter_params(LLADA_8B, "lora", get_method("lora").config(target_modules="o_proj"))


def test_small_config_by_hand():
    # per layer: q 8x8, k 8x4, v 8x4, o 8x8, gate/up 8x16, down 16x8 = 576; head 10x8
    assert SMALL.linear_params == 2 * 576 + 80 == 1232
    assert SMALL.total_params == 2 * (576 + 16) + 2 * 80 + 8 == 1352
    assert forward_flops(SMALL, 100, 20) == 100 * (2 * 1232 + 4 * 2 * 20 * 8) == 374_400
    assert training_flops(SMALL, 100, 50, 20, False) == 100 * (4 * 1232 + 12 * 320 + 300)
    assert training_flops(SMALL, 100, 50, 20, True) == 100 * (6 * 1232 + 16 * 320 + 300)
    # 12d (norms) + 4d + 4 kv (attention) + 6m (SwiGLU) + 3 x inputs of the adapted linears
    assert layer_activation_bytes(SMALL, [8, 8, 8, 8], 0.05) == 96 + 32 + 16 + 96 + 96 == 336
    assert layer_activation_bytes(SMALL, [8, 8, 8, 8], 0.0) == 304
    lora = get_method("lora").config(rank=2)
    assert adapter_params(SMALL, "lora", lora) == 2 * (32 + 24 + 24 + 32) == 224
    assert adapter_params(SMALL, "dora", get_method("dora").config(rank=2)) == 224 + 2 * 24
    m = memory_estimate(SMALL, 224, [8, 8, 8, 8], 0.05, 40, 30, weight_bytes=2)
    assert m.weights == 2 * 1352 and m.adapter == 16 * 224
    assert m.activations == 40 * 2 * 336
    assert m.activations_checkpointed == 40 * (2 * 2 * 8 + 336)
    assert m.loss == 40 * 12 * 10
    transient = 2 * (3 * 8 + 2 * 4 + 3 * 16)
    assert m.evaluation == 30 * (10 * 10 + transient)
    assert m.train_peak(False) == m.weights + m.adapter + m.activations + m.loss + 2 * GIB


def _small_folder(tmp_path):
    config = {
        # a masked LM with Llama-style keys (model_type "llama" is a causal base: L2D's)
        "model_type": "generic_masked_lm",
        "hidden_size": 8,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "intermediate_size": 16,
        "vocab_size": 10,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_cell_cost_by_hand_for_a_local_folder(tmp_path):
    folder = _small_folder(tmp_path)
    assert architecture_for(str(folder)) == Architecture(
        str(folder), "generic", 2, 8, 2, 1, 16, 10, source=str(folder / "config.json")
    )
    sets = {
        "train.steps": 10,
        "train.batch_size": 4,
        "train.grad_accum": 2,
        "train.max_length": 64,
        "train.val_every": 5,
        "eval.gen_length": 16,
    }
    grid = make_grid(
        {
            "model": str(folder),
            "methods": "lora",
            "tasks": "gsm8k",
            "ranks": "2",
            "limit": 3,
            "steps": "16",
            "set": sets,
        }  # fmt: skip
    )
    (cell,) = grid.cells()
    steps = sampling_steps(grid, cell)
    assert steps == [16]
    cost = cell_cost(cell, steps, device_kind("H100"), SMALL)
    assert cost.updates == 10 and cost.train_examples == 80
    assert cost.train_tokens == 80 * 64  # typical math length 320, capped at max_length
    assert cost.validation_tokens == 2 * 10 * 128 * 64  # 2 validations x bins x val examples
    assert cost.eval_tokens == 3 * 16 * (128 + 16)  # 3 examples x 16 steps x (prompt + gen)
    train = training_flops(SMALL, 5120, 224, 64, False) + forward_flops(SMALL, 163_840, 64)
    assert cost.train_flops == train
    assert cost.eval_flops == forward_flops(SMALL, 6912, 144)
    expected = train / (989e12 * 0.35) + cost.eval_flops / (989e12 * 0.30)
    assert cost.seconds == pytest.approx(expected)
    assert cost.memory.activations == 4 * 64 * 2 * 336  # batch x max_length x layers x bytes
    assert cost.fits


def _llada_cell(**sets):
    grid = make_grid(
        {
            "model": "llada-8b-instruct",
            "methods": "lora",
            "tasks": "gsm8k",
            "ranks": "32",
            "set": sets,
        }  # fmt: skip
    )
    (cell,) = grid.cells()
    return cell


def test_fit_check_refuses_a_cell_that_cannot_fit(monkeypatch):
    big = _llada_cell(**{"train.batch_size": 64, "train.max_length": 2048})
    cost = cell_cost(big, [256], device_kind("L40S"), LLADA_8B)
    assert not cost.fits
    line = fit_problem(cost, big)
    assert "on L40S (44.5 GiB)" in line and "lower train.batch_size" in line
    assert "\n" not in line
    # a cell that fits only with gradient checkpointing says so
    long = _llada_cell(**{"train.max_length": 1024})
    cost = cell_cost(long, [256], device_kind("A100-40GB"), LLADA_8B)
    assert not cost.fits and cost.memory.peak(True) <= cost.device.memory_bytes
    assert "set train.gradient_checkpointing=true" in fit_problem(cost, long)
    assert fit_problem(cell_cost(long, [256], device_kind("H200"), LLADA_8B), long) is None
    # the run checks before it loads anything: no hub, no weights needed
    monkeypatch.setattr(costs, "visible_device", lambda device: device_kind("L40S"))
    from harness.run.cell import CellRequest, run_cell

    with pytest.raises(BenchError, match="checked before loading the model"):
        run_cell(CellRequest(big, [256]), None, "cuda:0")
    monkeypatch.setenv("BENCH_NO_FIT_CHECK", "1")
    costs.check_fits(big, "cuda:0")  # the user's override: no error


def test_device_kinds():
    assert match_gpu_name("NVIDIA A100-SXM4-40GB", 40 * GIB).name == "A100-40GB"
    assert match_gpu_name("NVIDIA A100-SXM4-80GB", 80 * GIB).name == "A100-80GB"
    assert match_gpu_name("NVIDIA H100 80GB HBM3", 80 * GIB).name == "H100"
    assert match_gpu_name("NVIDIA H200", 140 * GIB).memory_bytes == 140 * GIB
    odd = match_gpu_name("NVIDIA RTX 9999", 12 * GIB)
    assert "timed as an A100" in odd.label and odd.memory_bytes == 12 * GIB
    assert device_kind("h200").name == "H200" and device_kind("cpu").memory_bytes > 0
    with pytest.raises(BenchError, match="valid: A100-40GB, A100-80GB, H100, H200, L40S, CPU"):
        device_kind("TPU")
    assert planning_device("L40S").label == "L40S (given)"


def test_dry_run_prints_gpu_hours_and_memory_for_an_8b_alias(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("COLUMNS", "300")
    args = ["run", "--model", "llada-8b-instruct", "--methods", "lora,nara", "--tasks", "gsm8k",
            "--ranks", "32", "--dry-run", "--out", str(tmp_path / "r")]  # fmt: skip
    code, out, _ = run_cli([*args, "--device-kind", "H100"], monkeypatch, capsys)
    assert code == 0, out
    assert "GPU-h" in out and "0.0 GPU-h" not in out and "0.0 min" not in out
    assert "real models costed on H100 (given)" in out
    assert "peak mem" in out and "yes" in out
    hours = float(out.split("H100 (given): ")[1].split(" GPU-hours")[0])
    assert hours > 1.0  # GSM8K: ~10 epochs of 7.3k examples and 1319 x 256 sampling steps
    code, out, _ = run_cli(
        [*args, "--device-kind", "L40S", "--set", "train.batch_size=64"], monkeypatch, capsys
    )
    assert code == 0 and "will not fit:" in out and "NO" in out
    assert not (tmp_path / "r").exists()  # nothing ran


def test_llada_and_dream_config_keys_are_read(tmp_path):
    """A downloaded folder's config.json in each family's own keys gives the published shapes."""
    llada = {"model_type": "llada", "architectures": ["LLaDAModelLM"], "d_model": 4096,
             "n_layers": 32, "n_heads": 32, "n_kv_heads": 32, "mlp_hidden_size": 12288,
             "vocab_size": 126464, "embedding_size": 126464, "weight_tying": False}  # fmt: skip
    dream = {"model_type": "Dream", "architectures": ["DreamModel"], "hidden_size": 3584,
             "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
             "intermediate_size": 18944, "vocab_size": 152064,
             "tie_word_embeddings": False}  # fmt: skip
    for data, known in ((llada, LLADA_8B), (dream, DREAM_7B)):
        folder = tmp_path / data["model_type"]
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(data))
        arch = architecture_for(str(folder))
        assert arch.total_params == known.total_params and arch.family == known.family
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(BenchError, match="does not give the model's hidden, layers"):
        architecture_for(str(tmp_path / "bad"))
