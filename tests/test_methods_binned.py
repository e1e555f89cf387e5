"""Binned LoRA: the bin rule, K = 1 is LoRA, per-row routing in mixed batches, training touches
only the bins present, save/load, stock-peft refusal, export of one bin, merging at a level."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from peft import PeftConfig, PeftModel, get_peft_model_state_dict, set_peft_model_state_dict

from harness.config.cell import TrainConfig
from harness.costs.architecture import LLADA_8B, adapter_params
from harness.ground.errors import BenchError
from harness.processes.training import train_adapter
from methods import get_method, load_adapter, merge_at
from methods.binned_layer import bin_of
from methods.export import export_adapter
from methods.registry import list_methods
from tests.test_methods_export import stock_base
from tests.test_methods_io import ids, make_dlm

RANK = 4
MIXED = torch.tensor([0.05, 0.3, 0.55, 0.8])  # bins 0, 1, 2, 3 of K = 4

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def binned(bins: int = 4, seed: int = 0, perturb: bool = True, **fields):
    dlm = make_dlm()
    torch.manual_seed(seed)
    m = get_method("binned_lora")
    adapter = m.apply(dlm, m.config(rank=RANK, bins=bins, **fields))
    if perturb:  # every factor random, as after training
        g = torch.Generator().manual_seed(11)
        with torch.no_grad():
            for p in adapter.adapter_parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.3)
    return dlm.eval(), adapter


def lora_of_bin(adapter, k: int):
    """A plain peft LoRA model holding bin ``k``'s factors (and the binned adapter's settings)."""
    dlm = make_dlm()
    fields = {f: getattr(adapter.config, f) for f in ("rank", "alpha", "scaling", "dropout")}
    lora = get_method("lora").apply(dlm, get_method("lora").config(**fields))
    state = get_peft_model_state_dict(adapter.peft_model, adapter_name=f"bin{k}")
    result = set_peft_model_state_dict(lora.peft_model, state)
    assert not result.unexpected_keys
    return dlm.eval()


def test_bin_rule_matches_integer_arithmetic():
    for bins in (*range(1, 13), 64):
        for length in (7, 10, 16, 64, 100, 256, 1000):
            n = torch.arange(length + 1)
            level = n.float() / length  # as the sampler and the likelihood compute it
            expected = torch.clamp(n * bins // length, max=bins - 1)
            assert torch.equal(bin_of(level, bins), expected), (bins, length)
    t = torch.rand(1000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(bin_of(t, 4), (t.double() * 4).floor().long())


@pytest.mark.parametrize("bins", [0, 65, "4", True, 2.5])
def test_bad_bins_are_one_line(bins):
    with pytest.raises(BenchError, match="bins must be an integer from 1 to 64"):
        get_method("binned_lora").config(bins=bins)
    with pytest.raises(BenchError, match="shared_init must be true or false"):
        get_method("binned_lora").config(shared_init="yes")


def test_bench_list_methods_shows_it_as_noise_aware():
    row = next(r for r in list_methods() if r.name == "binned_lora")
    fields = {f.name: f.default for f in row.fields}
    assert row.noise_aware and fields["bins"] == 4 and fields["shared_init"] is False
    assert fields["rank"] == 32 and fields["dropout"] == 0.05  # LoRA's own fields and defaults


def _two_steps(method: str, fields: dict, levels: torch.Tensor):
    dlm = make_dlm()
    torch.manual_seed(0)
    m = get_method(method)
    adapter = m.apply(dlm, m.config(rank=RANK, dropout=0.2, **fields))
    init = [p.detach().clone() for p in adapter.trainable_parameters()]
    opt = torch.optim.AdamW(adapter.trainable_parameters(), lr=0.05, weight_decay=0.05)
    x, target = ids(), ids().roll(1, dims=1)
    dlm.train()
    torch.manual_seed(1)  # the dropout masks
    losses = []
    for _ in range(2):  # B is zero at the first step: A moves from the second
        loss = F.cross_entropy(dlm(x, levels).transpose(1, 2), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    dlm.eval()
    with torch.no_grad():
        logits = dlm(x, levels)
    return adapter, init, losses, logits


def test_one_bin_is_lora_exactly():
    lora, lora_init, lora_losses, lora_logits = _two_steps("lora", {}, MIXED)
    one, one_init, one_losses, one_logits = _two_steps("binned_lora", {"bins": 1}, MIXED)
    assert len(one_init) == len(lora_init)
    assert all(torch.equal(a, b) for a, b in zip(one_init, lora_init, strict=True))  # same init
    assert one_losses == lora_losses
    params = zip(one.trainable_parameters(), lora.trainable_parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in params)  # the same training step
    assert torch.equal(one_logits, lora_logits)
    assert one.parameter_counts() == lora.parameter_counts()


def test_every_row_of_a_mixed_batch_is_its_own_bins_lora():
    dlm, adapter = binned(dropout=0.0)
    levels = torch.tensor([0.05, 0.3, 0.55, 0.8, 1.0, 0.3])  # bins 0 1 2 3 3 1
    x = torch.randint(3, 100, (6, 12), generator=torch.Generator().manual_seed(2))
    target = x.roll(1, dims=1)
    dlm.train()  # forward AND gradients, in training mode
    loss = F.cross_entropy(dlm(x, levels).transpose(1, 2), target, reduction="sum")
    loss.backward()
    logits = dlm.eval()(x, levels).detach()
    bins = bin_of(levels, 4)
    for k in range(4):
        single = lora_of_bin(adapter, k)
        rows = (bins == k).nonzero().squeeze(1)
        with torch.no_grad():
            uniform = torch.full((6,), (k + 0.5) / 4)  # the whole batch in bin k
            torch.testing.assert_close(dlm(x, uniform), single(x, uniform), rtol=0, atol=1e-6)
            for i in rows.tolist():  # each row alone, through peft's plain LoRA
                alone = single(x[i : i + 1], levels[i : i + 1])
                torch.testing.assert_close(logits[i : i + 1], alone, rtol=0, atol=1e-5)
        single.train()
        part = F.cross_entropy(
            single(x[rows], levels[rows]).transpose(1, 2), target[rows], reduction="sum"
        )
        part.backward()
        mine = {n: p.grad for n, p in adapter.peft_model.named_parameters() if f".bin{k}." in n}
        for name, p in single.backbone.named_parameters():
            if ".default." in name:
                torch.testing.assert_close(
                    mine[name.replace(".default.", f".bin{k}.")], p.grad, rtol=1e-4, atol=1e-5
                )


def test_a_step_changes_only_the_bins_present_and_bins_then_differ():
    dlm, adapter = binned(perturb=False, shared_init=True)
    before = {k: [p.detach().clone() for p in adapter.bin_parameters(k)] for k in range(4)}
    assert all(torch.equal(a, b) for a, b in zip(before[0], before[2], strict=True))  # shared
    opt = torch.optim.AdamW(adapter.trainable_parameters(), lr=0.05, weight_decay=0.05)
    x = ids()
    levels = torch.tensor([0.1, 0.6, 0.2, 0.7])  # bins 0, 2, 0, 2
    dlm.train()
    for _ in range(2):
        loss = F.cross_entropy(dlm(x, levels).transpose(1, 2), x.roll(1, dims=1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    after = {k: adapter.bin_parameters(k) for k in range(4)}
    for k in (1, 3):
        assert all(torch.equal(a, b) for a, b in zip(before[k], after[k], strict=True))
    for k in (0, 2):
        assert all(not torch.equal(a, b) for a, b in zip(before[k], after[k], strict=True))
    assert not any(
        torch.allclose(a, b) for a, b in zip(after[0], after[2], strict=True)
    )  # the same start, different examples: different adapters


def test_the_training_loop_trains_every_bin_into_a_different_adapter():
    dlm, adapter = binned(perturb=False, shared_init=True)
    tok = dlm.tokenizer
    data = [(tok.encode_prompt(f"Q: {i}+1="), tok.encode(f" {i + 1}")) for i in range(8)]
    config = TrainConfig(steps=4, batch_size=8, lr=0.05, warmup_ratio=0.0, val_examples=0)
    train_adapter(dlm, adapter, data, [], config, seed=0)
    deltas = []
    for layer in [m for m in dlm.modules() if hasattr(m, "bind_router")][:1]:
        for k in range(4):
            b, a = layer.lora_B[f"bin{k}"].weight, layer.lora_A[f"bin{k}"].weight
            deltas.append((b @ a).detach())
    assert all(d.abs().max() > 0 for d in deltas)  # every bin was trained
    for i in range(4):
        for j in range(i):
            assert not torch.allclose(deltas[i], deltas[j])


def test_parameters_are_k_times_lora_and_the_cost_model_agrees():
    lora = get_method("lora").apply(make_dlm(), get_method("lora").config(rank=RANK))
    for bins in (1, 3):
        _, adapter = binned(bins=bins, perturb=False)
        counts = adapter.parameter_counts()
        assert counts.adapter == counts.trainable == bins * lora.parameter_counts().adapter
    config = get_method("binned_lora").config()
    assert adapter_params(LLADA_8B, "binned_lora", config) == 4 * 33_554_432


def test_save_load_reproduces_logits_at_several_levels(tmp_path):
    dlm, adapter = binned()
    x = ids()
    probes = [MIXED, MIXED.flip(0), *(torch.full((4,), t) for t in (0.0, 0.25, 0.5, 0.99, 1.0))]
    with torch.no_grad():
        expected = [dlm(x, level) for level in probes]
    adapter.save(tmp_path)
    assert {"bench_method.json", "adapter_config.json", "bin0", "bin3"} <= {
        p.name for p in tmp_path.iterdir()
    }
    assert not (tmp_path / "adapter_model.safetensors").exists()
    for k in range(4):  # peft's multi-adapter layout: one sub-folder per adapter
        assert {"adapter_config.json", "adapter_model.safetensors"} <= {
            p.name for p in (tmp_path / f"bin{k}").iterdir()
        }
    assert json.loads((tmp_path / "bench_method.json").read_text())["bins"]["bin1"] == [0.25, 0.5]
    fresh = make_dlm()
    torch.manual_seed(12345)  # a different draw for everything a fresh apply would initialise
    loaded = load_adapter(fresh, tmp_path)
    assert loaded.method.name == "binned_lora" and loaded.config == adapter.config
    fresh.eval()
    with torch.no_grad():
        for level, e in zip(probes, expected, strict=True):
            torch.testing.assert_close(fresh(x, level), e, rtol=0, atol=1e-6)
    assert not any(p.requires_grad for p in loaded.adapter_parameters())
    resumed = load_adapter(make_dlm(), tmp_path, trainable=True)
    assert resumed.parameter_counts().trainable == adapter.parameter_counts().trainable


def test_stock_peft_refuses_the_folder_and_each_bin(tmp_path):
    _, adapter = binned()
    adapter.save(tmp_path)
    for folder in (tmp_path, tmp_path / "bin0", tmp_path / "bin3"):
        for load in (
            lambda f=folder: PeftModel.from_pretrained(stock_base(), str(f)),
            lambda f=folder: PeftConfig.from_pretrained(str(f)),
            lambda f=folder: stock_base().load_adapter(str(f)),
        ):
            with pytest.raises(KeyError, match="bench binned_lora adapter, not a plain LoRA"):
                load()


@pytest.mark.parametrize(("level", "k"), [(0.0, 0), (0.6, 2), (1.0, 3)])
def test_export_writes_the_bin_of_the_level_as_plain_lora(level, k, tmp_path):
    dlm, adapter = binned()
    adapter.save(tmp_path / "binned")
    done = export_adapter(tmp_path / "binned", tmp_path / "plain", level)
    assert (done.bin, done.bins, done.method) == (k, 4, "binned_lora")
    record = json.loads((tmp_path / "plain" / "bench_method.json").read_text())
    assert record["method"] == "lora" and record["exported_from"]["bin"]["index"] == k
    stock = PeftModel.from_pretrained(stock_base(), str(tmp_path / "plain")).eval()
    inside = torch.full((4,), (k + 0.5) / 4)  # any level of the same bin
    with torch.no_grad():
        torch.testing.assert_close(
            stock(input_ids=ids()).logits, dlm(ids(), inside), rtol=0, atol=1e-6
        )
        other = torch.full((4,), ((k + 2) % 4 + 0.5) / 4)
        assert not torch.allclose(stock(input_ids=ids()).logits, dlm(ids(), other), atol=1e-4)


def test_export_refusals_are_one_line(tmp_path, monkeypatch, capsys):
    from tests.test_runner import run_cli

    _, adapter = binned()
    adapter.save(tmp_path / "binned")
    for args, message in (
        ([], "pass --level t"),
        (["--level", "1.5"], "--level must be in [0, 1]"),
    ):
        cmd = ["export", "--adapter", str(tmp_path / "binned"), "--out", str(tmp_path / "o")]
        code, _, err = run_cli(cmd + args, monkeypatch, capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    cmd = ["export", "--adapter", str(tmp_path / "binned"), "--out", str(tmp_path / "o")]
    code, out, _ = run_cli([*cmd, "--level", "0.3"], monkeypatch, capsys)
    assert code == 0 and "(bin 1 of 4)" in out


def test_merge_at_a_level_folds_in_that_bin_only():
    dlm, adapter = binned()
    x = ids()
    with torch.no_grad():
        expected = dlm(x, torch.full((4,), 0.6))
        merge_at(dlm, 0.6)
        torch.testing.assert_close(dlm(x, MIXED), expected, rtol=0, atol=1e-5)  # level unused
        adapter.unmerge()
        assert not torch.allclose(dlm(x, MIXED), expected, atol=1e-4)
    with pytest.raises(BenchError, match="merge_at"):
        adapter.merge()


def test_a_model_called_without_the_noise_level_fails_clearly():
    dlm, _ = binned()
    with pytest.raises(RuntimeError, match="needs the noise level"):
        dlm.backbone(input_ids=ids())
    with pytest.raises(RuntimeError, match="one level per example"):
        dlm.channel.set(torch.tensor([0.5]))
        dlm.backbone(input_ids=ids())
