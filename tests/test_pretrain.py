"""Tiny-base pretraining: it learns, it is deterministic, and it is cached atomically."""

from __future__ import annotations

import json
import math
import os

import pytest

from harness.ground.errors import BenchError
from harness.processes.causal.pretrain import CausalPretrainConfig, tiny_ar_base_dir
from harness.processes.masked.pretrain import (
    SHORT_ANSWER_BASE,
    PretrainConfig,
    ensure_tiny_base,
    pretrain,
    tiny_base_dir,
)
from harness.processes.pretraining import CHANCE
from tests.conftest import SMALL_BASE

QUICK = SMALL_BASE
# The EOS tail as the first long-answer base had it: a tail batch instead of every 4th update.
REPLACED = PretrainConfig(eos_tail_mode="replace", eos_tail_tokens=4096, eos_tail_weight=1.0)


def test_pretraining_lowers_the_loss_and_is_deterministic(tmp_path):
    """With the default EOS tail (added to every 4th update) at the small base's size."""
    import dataclasses

    quick = dataclasses.replace(QUICK, eos_tail_every=PretrainConfig().eos_tail_every)
    a = pretrain(quick, tmp_path / "a", show_progress=False)
    b = pretrain(quick, tmp_path / "b", show_progress=False)
    curve = a["loss_curve"]
    assert len(curve) == quick.steps
    # The plain-only updates' loss (a tail's added loss is on another scale: per answer token).
    plain = [loss for step, loss in enumerate(curve) if quick.extra_batch_shape(step) is None]
    assert sum(plain[-8:]) / 8 < 0.8 * sum(plain[:8]) / 8
    assert a["loss_curve"] == b["loss_curve"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (
        tmp_path / "b" / "model.safetensors"
    ).read_bytes()
    assert not list(tmp_path.glob("*.tmp-*"))


def test_default_bases_keep_their_cache_keys():
    """The folders the cached default bases live in (a change here retrains both: bump
    BASE_VERSION / AR_BASE_VERSION on purpose, never by accident)."""
    assert PretrainConfig().key() == "41fa384df0e2"
    assert SHORT_ANSWER_BASE.key() == "418d20c5645d"  # the base before the EOS tail
    assert CausalPretrainConfig().key() == "0ee9d96aa988"
    assert tiny_base_dir().name == "tiny-base-41fa384df0e2"
    assert tiny_ar_base_dir().name == "tiny-ar-base-0ee9d96aa988"
    assert PretrainConfig(eval_examples=5).key() == PretrainConfig().key()
    assert PretrainConfig(steps=801).key() != PretrainConfig().key()


def test_ensure_tiny_base_builds_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    folder = ensure_tiny_base(QUICK, show_progress=False)
    assert folder == tiny_base_dir(QUICK) and folder.parent == tmp_path / "cache"
    stamp = os.stat(folder / "pretrain_report.json").st_mtime_ns
    assert ensure_tiny_base(QUICK, show_progress=False) == folder
    assert os.stat(folder / "pretrain_report.json").st_mtime_ns == stamp


@pytest.mark.slow
def test_default_base_beats_chance_on_every_synthetic_family():
    """One-sided binomial test per family: accuracy above chance with z > 3 (p < 0.002).

    Gets the default tiny base exactly as `bench run --model tiny` would (installing the copy
    that ships with bench when it is not cached yet), so this test never silently skips.
    """
    report = json.loads((ensure_tiny_base() / "pretrain_report.json").read_text())
    n = report["config"]["eval_examples"]
    for family, chance in CHANCE.items():
        z = (report["accuracy"][family] - chance) / math.sqrt(chance * (1 - chance) / n)
        assert z > 3, (family, report["accuracy"], n)


def test_replaced_every_fourth_step_is_an_eos_tail_batch_of_about_the_same_tokens():
    config = REPLACED
    shapes = [config.batch_shape(step) for step in range(16)]
    tails = [(step, shape) for step, shape in enumerate(shapes) if shape[1] is not None]
    # 4096 tokens over (length + 64) tokens per row: 32, 21, 12 and 7 rows.
    assert tails == [(3, (32, 64)), (7, (21, 128)), (11, (12, 256)), (15, (7, 512))]
    assert all(shape == (config.batch_size, None) for shape in shapes if shape[1] is None)
    assert PretrainConfig().batch_shape(3) == (config.batch_size, None)


def test_the_eos_tail_is_part_of_the_base_key_only_when_on():
    assert REPLACED.key() not in (PretrainConfig().key(), SHORT_ANSWER_BASE.key())
    assert PretrainConfig(eos_tail_lengths=(64, 256)).key() != PretrainConfig().key()
    assert PretrainConfig(eos_tail_weight=1.0).key() != PretrainConfig().key()
    # off: the tail's other fields do not make another base
    off = PretrainConfig(eos_tail_every=0, eos_tail_lengths=(64, 256), eos_tail_mode="replace")
    assert off.key() == SHORT_ANSWER_BASE.key()


def test_an_eos_tail_batch_scores_its_padding_and_normalises_as_asked():
    import torch

    from harness.models.tokenizer import CharTokenizer
    from harness.processes.masked.pretrain import build_tiny_dlm, masked_diffusion_loss

    tok = CharTokenizer()
    dlm = build_tiny_dlm(QUICK, tok)
    pairs = [(tok.encode("Bags of 1,2,3 pens. Most?"), tok.encode("3"))]

    def loss(pad_to, normalize):
        config = PretrainConfig(eos_tail_normalize=normalize)
        with torch.no_grad():
            return masked_diffusion_loss(
                dlm, pairs, torch.Generator().manual_seed(0), pad_to, config
            ).item()

    # One example: "response" divides its loss by 64 response tokens, "answer" by the answer
    # and one EOS (2 tokens); without a tail both are the plain loss over "3" and its EOS.
    assert loss(64, "answer") == pytest.approx(loss(64, "response") * 64 / 2, rel=1e-5)
    assert loss(None, "answer") == loss(None, "response")
    with pytest.raises(BenchError):
        PretrainConfig(eos_tail_normalize="tokens")


def test_added_tail_batches_keep_every_plain_batch_and_come_from_a_second_stream():
    """The default ``eos_tail_mode="add"``: every step keeps its plain batch, every 4th adds a
    tail batch."""
    config = PretrainConfig()
    assert all(config.batch_shape(step) == (config.batch_size, None) for step in range(16))
    extras = [(step, config.extra_batch_shape(step)) for step in range(16)]
    # 2048 tokens over (length + 64) tokens per row: 16, 10, 6 and (at least) 4 rows.
    assert [(s, e) for s, e in extras if e is not None] == [
        (3, (16, 64)),
        (7, (10, 128)),
        (11, (6, 256)),
        (15, (4, 512)),
    ]
    assert REPLACED.extra_batch_shape(3) is None  # "replace": no second batch
    assert REPLACED.key() == "fac4e1a2f462"  # the mode left the first tail base's key alone
    with pytest.raises(BenchError):
        PretrainConfig(eos_tail_mode="both")


def test_an_added_tail_leaves_the_plain_batches_drawn_as_without_it():
    """The plain batches (rows, noise levels, masks) are drawn from the first generator exactly
    as for the base without a tail; the tail batches from the second one only."""
    import dataclasses

    import torch

    from harness.processes.pretraining import run_pretraining

    seen: dict[str, list] = {"plain": [], "tail": []}

    def record(kind):
        def batch_loss(pairs, generator, pad_to):
            key = "plain" if pad_to is None else "tail"
            seen[key].append((pairs, torch.rand(1, generator=generator).item(), pad_to))
            return model.weight.sum() * 0

        return batch_loss

    model = torch.nn.Linear(2, 2)
    pools = [[([i], [i]) for i in range(50)], [([100 + i], [i]) for i in range(50)]]
    small = dataclasses.replace(QUICK, steps=8, eos_tail_every=2, eos_tail_mode="add")
    run_pretraining(model, small, pools, record("add"), "x", show_progress=False)
    with_tail = dict(seen)
    seen.update(plain=[], tail=[])
    run_pretraining(
        model, dataclasses.replace(small, eos_tail_every=0), pools, record("off"), "x", False
    )
    assert with_tail["plain"] == seen["plain"] and len(seen["plain"]) == 8
    assert seen["tail"] == [] and [t[2] for t in with_tail["tail"]] == [64, 128, 256, 512]
    # the tail batches take the families in turn
    assert [t[0][0][0][0] >= 100 for t in with_tail["tail"]] == [False, True, False, True]
