"""The released LLaDA and Dream code loads under our transformers, repaired and checked.

Folders: tests/released_models.py (tiny random weights, substitute byte-level tokenizer).
"""

from __future__ import annotations

import pytest
import torch

from harness.models.loader import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _logits(dlm, text="hello world"):
    ids = torch.tensor([dlm.tokenizer.encode_prompt(text)])
    with torch.no_grad():
        return dlm(ids, torch.ones(1))


def test_llada_loads_with_its_repairs_named(llada_folder):
    dlm = load_model(str(llada_folder), "cpu")
    assert dlm.info.family == "llada" and not dlm.info.shift_logits
    assert set(dlm.info.repairs) == {
        "llada:post_init",
        "llada:tie_weights_signature",
        "llada:config.use_cache",
    }
    assert dlm.mask_id == 126336 and dlm.tokenizer.bos_prefix == (126080,)
    logits = _logits(dlm)
    assert logits.shape[-1] == 126464 and torch.isfinite(logits).all()


def test_dream_loads_with_its_repairs_named_and_is_deterministic(dream_folder):
    first = load_model(str(dream_folder), "cpu")
    assert first.info.family == "dream" and first.info.shift_logits
    assert set(first.info.repairs) == {
        "dream:rope_init_default",
        "dream:tied_weights_keys",
        "dream:rotary_inv_freq",
    }
    assert first.mask_id == 151666 and first.tokenizer.bos_prefix == (151665,)
    second = load_model(str(dream_folder), "cpu")
    # the uninitialised inv_freq buffers used to make two loads differ
    torch.testing.assert_close(_logits(first), _logits(second), rtol=0, atol=0)


def test_llada_adaptable_layers_and_noise_channel(llada_folder):
    from tests.conftest import LevelRecorder

    dlm = load_model(str(llada_folder), "cpu")
    names = {n.split(".")[-1] for n, _ in dlm.backbone.named_modules()}
    assert {"q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"} <= names
    recorder = LevelRecorder(dlm)
    dlm(torch.tensor([[126080, 104, dlm.mask_id]]), torch.tensor([0.3]))
    assert recorder.levels[0].tolist() == [pytest.approx(0.3)]


def test_dream_logits_are_shifted_by_one(dream_folder):
    dlm = load_model(str(dream_folder), "cpu")
    ids = torch.tensor([[151665, 104, 105, 106]])
    with torch.no_grad():
        raw = dlm.backbone(input_ids=ids).logits
        shifted = dlm(ids, torch.tensor([0.5]))
    assert torch.equal(shifted[:, 1:], raw[:, :-1])
