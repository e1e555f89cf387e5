"""The EOS tail in fine-tuning batches (``train.eos_tail``, LLaDA's SFT padding): responses
padded with EOS to a fixed length, every pad scored; off by default, and then out of the cell id;
refused before any cell for a model that does not train by masked diffusion."""

from __future__ import annotations

import pytest
import torch

from harness.config.cell import TrainConfig
from harness.ground.errors import BenchError
from harness.models.tokenizer import CharTokenizer
from harness.processes.masked.forward import MaskingConfig, mask_response, sft_batch_of
from harness.processes.masked.objective import DiffusionObjective
from harness.run.grid import make_grid
from harness.run.preflight import check_settings
from tests.conftest import make_tiny_dlm


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_HUB", "0")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))


def _pairs(tok):
    return [(tok.encode("1+2="), tok.encode("3")), (tok.encode("10+20="), tok.encode("30"))]


def test_a_tail_pads_every_response_with_scored_eos_to_the_asked_length():
    tok = CharTokenizer()
    pairs = _pairs(tok)
    plain_ids, plain_response = sft_batch_of(pairs, tok, 512)
    ids, response = sft_batch_of(pairs, tok, 512, eos_tail=40)
    longest_prompt = max(len(p) for p, _ in pairs)
    assert ids.shape == (2, longest_prompt + 40)
    for row, (prompt, answer) in enumerate(pairs):
        start = len(prompt)
        assert ids[row, start : start + len(answer)].tolist() == answer
        assert (ids[row, start + len(answer) :] == tok.eos_token_id).all()
        assert response[row, start:].all() and not response[row, :start].any()
        # the plain batch is the tail batch cut at its longest row
        width = plain_ids.shape[1]
        assert ids[row, :width].tolist() == plain_ids[row].tolist()
        assert response[row, :width].tolist() == plain_response[row].tolist()
    # every padded EOS can be masked and scored
    masked = mask_response(ids, response, torch.ones(2), tok.mask_token_id, MaskingConfig())
    assert masked.masked[:, -1].all() and (masked.target_ids[:, -1] == tok.eos_token_id).all()


def test_the_tail_stays_within_max_length_and_zero_means_the_longest_row():
    tok = CharTokenizer()
    pairs = _pairs(tok)
    assert sft_batch_of(pairs, tok, 20, eos_tail=256)[0].shape[1] == 20
    assert torch.equal(sft_batch_of(pairs, tok, 512, 0)[0], sft_batch_of(pairs, tok, 512)[0])


def test_training_with_a_tail_sees_the_long_batches():
    dlm = make_tiny_dlm()
    tok = dlm.tokenizer
    seen = []
    original = dlm.forward

    def spy(ids, *args, **kwargs):
        seen.append(ids.shape[1])
        return original(ids, *args, **kwargs)

    dlm.forward = spy
    config = TrainConfig(eos_tail=48, batch_size=2, max_length=512)
    DiffusionObjective().micro_loss(
        dlm, None, _pairs(tok), config, torch.Generator().manual_seed(0), torch.no_grad()
    )
    assert seen == [max(len(p) for p, _ in _pairs(tok)) + 48]


def test_the_tail_is_out_of_the_cell_id_when_off_and_in_it_when_on(no_network):
    spec = {"methods": ["lora"], "tasks": ["synth_math"], "seeds": [0]}
    plain = make_grid(spec).cells()[0]
    assert "eos_tail" not in plain.identity()["train"]
    tail = make_grid({**spec, "set": {"train.eos_tail": [256]}}).cells()[0]
    assert tail.train.eos_tail == 256 and tail.identity()["train"]["eos_tail"] == 256
    assert tail.cell_id != plain.cell_id


def test_a_tail_on_a_causal_model_stops_the_run_before_any_cell(no_network):
    cells = make_grid(
        {
            "methods": ["lora"],
            "tasks": ["synth_math"],
            "model": "tiny-ar",
            "set": {"train.eos_tail": [64]},
        }
    ).cells()
    with pytest.raises(BenchError, match="train.eos_tail.*causal"):
        check_settings(cells)
    with pytest.raises(BenchError):
        TrainConfig(eos_tail=-1)
