"""Shared fixtures: tiny random dLLMs built in milliseconds, and recorders for the noise channel."""

from __future__ import annotations

import pytest
import torch

from harness.models.dlm import DiffusionLM, ModelInfo
from harness.models.tiny import TinyDLLM, TinyDLLMConfig
from harness.models.tokenizer import CharTokenizer
from harness.pretrain import PretrainConfig

# A base small enough to pretrain in a few seconds: for plumbing tests, not for accuracy.
SMALL_BASE = PretrainConfig(
    steps=40,
    batch_size=16,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    examples_per_family=300,
    eval_examples=4,
)


def make_tiny_dlm(seed: int = 0, hidden: int = 32, layers: int = 2) -> DiffusionLM:
    torch.manual_seed(seed)
    tok = CharTokenizer()
    config = TinyDLLMConfig(
        vocab_size=tok.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
    )
    model = TinyDLLM(config).eval()
    return DiffusionLM(model, tok, ModelInfo("tiny", "tiny", "test"))


class LevelRecorder:
    """Subscribes to a channel and keeps a copy of every level it was sent."""

    def __init__(self, dlm: DiffusionLM) -> None:
        self.levels: list[torch.Tensor] = []
        dlm.channel.subscribe(self)

    def __call__(self, level: torch.Tensor) -> None:
        self.levels.append(level.detach().clone())


@pytest.fixture
def tiny_dlm() -> DiffusionLM:
    return make_tiny_dlm()


# Tiny random-weight LLaDA / Dream folders from the released code (tests/released_models.py);
# built once per session, each test loads its own model from them.
@pytest.fixture(scope="session")
def llada_folder(tmp_path_factory):
    from tests.released_models import build_llada

    return build_llada(tmp_path_factory.mktemp("released"))


@pytest.fixture(scope="session", params=[False, True], ids=["dream", "dream-hub-mask"])
def dream_folder(request, tmp_path_factory):
    """Dream as shipped in the fixture, and with the hub's mask behaviour (both, parametrized)."""
    from tests.released_models import build_dream

    return build_dream(tmp_path_factory.mktemp("released"), hub_mask=request.param)
