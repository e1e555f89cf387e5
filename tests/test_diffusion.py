import math

import pytest
import torch

from harness.ground.errors import BenchError
from harness.processes.masked.forward import (
    MaskingConfig,
    build_sft_batch,
    diffusion_loss,
    mask_response,
    masked_token_ce,
)

MASK = 2


def _batch(batch=4, prompt=5, length=40):
    ids = torch.randint(10, 90, (batch, length))
    response = torch.zeros(batch, length, dtype=torch.bool)
    response[:, prompt:] = True
    return ids, response


@pytest.mark.parametrize("t_value", [0.1, 0.5, 0.9])
def test_bernoulli_masked_fraction_tracks_t_and_spares_prompt(t_value):
    ids, response = _batch(batch=64, prompt=7, length=207)
    g = torch.Generator().manual_seed(0)
    t = torch.full((64,), t_value)
    nb = mask_response(ids, response, t, MASK, MaskingConfig("bernoulli"), g)
    assert not nb.masked[:, :7].any()
    assert torch.equal(nb.input_ids[:, :7], ids[:, :7])
    fraction = nb.masked[:, 7:].float().mean().item()
    expected = (1 - 1e-3) * t_value + 1e-3
    assert abs(fraction - expected) < 0.02
    assert torch.equal(nb.input_ids[nb.masked], torch.full((int(nb.masked.sum()),), MASK))
    assert torch.equal(nb.noise_level, t)


def test_exact_mode_masks_ceil_t_times_length_at_least_one():
    ids, response = _batch(batch=5, prompt=3, length=13)  # 10 response tokens
    t = torch.tensor([0.0, 0.01, 0.25, 0.5, 1.0])
    nb = mask_response(
        ids, response, t, MASK, MaskingConfig("exact"), torch.Generator().manual_seed(1)
    )
    assert nb.masked.sum(dim=1).tolist() == [1, 1, 3, 5, 10]
    assert not nb.masked[:, :3].any()
    assert torch.allclose(nb.mask_prob, torch.tensor([0.1, 0.1, 0.3, 0.5, 1.0]))


def test_loss_weighting_on_a_hand_computed_case():
    vocab = 7
    ids = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]])
    response = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1]], dtype=torch.bool)
    masked = torch.tensor([[0, 0, 1, 0, 1], [0, 1, 0, 0, 0]], dtype=torch.bool)
    from harness.processes.masked.forward import NoisyBatch

    p = torch.tensor([0.5, 0.25])
    nb = NoisyBatch(ids, ids, masked, p, p, response.sum(1))
    logits = torch.zeros(2, 5, vocab)  # uniform: CE = log(vocab) everywhere
    ce = math.log(vocab)
    loss, per_example = diffusion_loss(logits, nb, MaskingConfig(normalize="answer_length"))
    expected = [2 * ce / 0.5 / 3, 1 * ce / 0.25 / 4]
    assert torch.allclose(per_example, torch.tensor(expected))
    assert loss.item() == pytest.approx(sum(expected) / 2)
    token_loss, _ = diffusion_loss(logits, nb, MaskingConfig(normalize="token"))
    assert token_loss.item() == pytest.approx((2 * ce / 0.5 + ce / 0.25) / 7)
    ce_sum, count = masked_token_ce(logits, nb)
    assert torch.allclose(ce_sum, torch.tensor([2 * ce, ce])) and count.tolist() == [2, 1]


def test_sft_batch_pads_with_trained_eos():
    ids, response = build_sft_batch([[5, 6, 7], [8]], [[9], [10, 11]], eos_id=1)
    assert ids.tolist() == [[5, 6, 7, 9, 1], [8, 10, 11, 1, 1]]
    assert response.tolist() == [[0, 0, 0, 1, 1], [0, 1, 1, 1, 1]]


def test_sft_batch_pads_every_response_to_the_asked_length_with_eos():
    ids, response = build_sft_batch([[1, 2, 3], [4]], [[5], [6, 7]], eos_id=0, response_length=8)
    # The longest prompt (3 tokens) plus 8 response tokens; the shorter prompt's row gets more.
    assert ids.shape == (2, 11)
    assert ids[0].tolist() == [1, 2, 3, 5] + [0] * 7
    assert ids[1].tolist() == [4, 6, 7] + [0] * 8
    assert response[0].tolist() == [False] * 3 + [True] * 8
    assert response[1].tolist() == [False] + [True] * 10
    short, _ = build_sft_batch([[1, 2, 3], [4]], [[5], [6, 7]], eos_id=0)
    assert short.shape == (2, 5)  # without it: the longest row and its EOS


def test_over_long_rows_keep_the_bos_prefix_in_front():
    bos = 99
    row = ([[bos, 5, 6, 7, 8]], [[9, 10]])
    # the prompt alone overflows: its head is cut, BOS stays first, one answer token survives
    ids, response = build_sft_batch(*row, eos_id=1, max_length=4, prefix=(bos,))
    assert ids.tolist() == [[bos, 7, 8, 9]]
    assert response.tolist() == [[0, 0, 0, 1]]
    # without a prefix the prompt's tail is kept as before
    ids, _ = build_sft_batch(*row, eos_id=1, max_length=4)
    assert ids.tolist() == [[6, 7, 8, 9]]
    # a short prompt only loses answer tokens
    ids, _ = build_sft_batch([[bos, 5]], [[9, 10, 11]], eos_id=1, max_length=4, prefix=(bos,))
    assert ids.tolist() == [[bos, 5, 9, 10]]


def test_bad_masking_mode_is_rejected():
    with pytest.raises(BenchError, match="bernoulli, exact"):
        MaskingConfig(mode="sometimes")
