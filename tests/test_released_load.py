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


def _left_padded(dlm, rows):
    width = max(len(r) for r in rows)
    pad = dlm.tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, attention


@pytest.mark.parametrize("kind", ["llada", "dream", "dream-hub"])
def test_left_padding_does_not_change_a_rows_logits(kind, released_folder):
    """Both Dream mask behaviours (shipped, hub) and LLaDA: padded rows equal unpadded ones."""
    dlm = load_model(str(released_folder(kind)), "cpu")
    tok = dlm.tokenizer
    rows = [tok.encode_prompt("a longer prompt here") + [dlm.mask_id] * 2]
    rows.append(tok.encode_prompt("hi") + [dlm.mask_id] * 2)
    ids, attention = _left_padded(dlm, rows)
    with torch.no_grad():
        batched = dlm(ids, torch.ones(2), attention)
        for i, row in enumerate(rows):
            alone = dlm(torch.tensor([row]), torch.ones(1))[0]
            # position 0 (BOS) is never scored; Dream's shifted logits there read the pad
            got = batched[i, -len(row) + 1 :]
            torch.testing.assert_close(got, alone[1:], rtol=1e-5, atol=1e-5)


def test_dream_receives_its_released_inputs():
    """No mask without padding; with padding a 4-D bool mask + position ids (generation_utils)."""
    from harness.models.dream import dream_inputs

    ids = torch.tensor([[9, 9, 5, 6], [1, 2, 3, 4]])
    assert dream_inputs(ids, torch.ones_like(ids)) == {"input_ids": ids}
    assert dream_inputs(ids, None) == {"input_ids": ids}
    attention = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    kwargs = dream_inputs(ids, attention)
    mask = kwargs["attention_mask"]
    assert mask.dtype == torch.bool and mask.shape == (2, 1, 4, 4)
    assert mask[0, 0].tolist() == [[False] * 4, [False] * 4, [False, False, True, True]] + [
        [False, False, True, True]
    ]
    assert bool(mask[1].all())
    assert kwargs["position_ids"].tolist() == [[1, 1, 0, 1], [0, 1, 2, 3]]


def test_hub_dream_forward_crashes_on_a_2d_integer_mask(released_folder):
    """Why the 4-D mask: the hub's forward hands a 2-D mask to SDPA untouched."""
    dlm = load_model(str(released_folder("dream-hub")), "cpu")
    ids, attention = _left_padded(dlm, [[151665, 104, 105], [151665, 104]])
    with pytest.raises(RuntimeError):
        dlm.backbone(input_ids=ids, attention_mask=attention)


def test_decoding_ignores_ids_beyond_the_tokenizer(llada_folder):
    dlm = load_model(str(llada_folder), "cpu")
    tok = dlm.tokenizer
    assert tok.vocab_size == 126349 < 126464  # the model's output vocabulary is padded
    assert tok.decode([104, 126400, 105, 126463, tok.eos_token_id]) == "hi"


def test_prompts_start_with_bos_once(released_folder):
    dlm = load_model(str(released_folder("llada")), "cpu")
    assert dlm.tokenizer.encode_prompt("hi") == [126080, 104, 105]
    assert dlm.tokenizer.encode_prompt("") == [126080]
    assert dlm.tokenizer.encode("hi") == [104, 105]  # continuations carry no BOS


def test_llada_chat_template_bos_is_not_doubled(tmp_path):
    from tests.released_models import build_llada

    dlm = load_model(str(build_llada(tmp_path, chat_template=True)), "cpu")
    ids = dlm.tokenizer.encode_prompt(dlm.tokenizer.chat("hi"))
    assert ids[0] == 126080 and ids.count(126080) == 1
    assert ids[1] == 126346  # <|start_header_id|>, as in LLaDA's SFT format


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_repaired_model_saves_and_reloads_the_same(kind, released_folder, tmp_path):
    """save_pretrained works on the repaired classes (Dream's list-valued tied-weights attribute
    used to break it) and a folder written by it loads back to the same logits."""
    import shutil

    source = released_folder(kind)
    dlm = load_model(str(source), "cpu")
    out = tmp_path / "saved"
    dlm.backbone.save_pretrained(out)
    for extra in source.iterdir():  # the code and tokenizer files travel with the weights
        if extra.suffix == ".py" or extra.name.startswith(("tokenizer", "special", "generation")):
            shutil.copy(extra, out / extra.name)
    again = load_model(str(out), "cpu")
    torch.testing.assert_close(_logits(again), _logits(dlm), rtol=0, atol=0)
