"""Shared fixtures: tiny random dLLMs built in milliseconds, and recorders for the noise channel."""

from __future__ import annotations

import pytest
import torch

from harness.models.dlm import DiffusionLM, ModelInfo
from harness.models.tiny import TinyDLLM, TinyDLLMConfig
from harness.models.tokenizer import CharTokenizer
from harness.processes.masked.pretrain import PretrainConfig

# A base small enough to pretrain in a few seconds: for plumbing tests, not for accuracy (without
# the EOS tail, whose long batches would dominate its time; tests/test_pretrain.py trains one with).
SMALL_BASE = PretrainConfig(
    eos_tail_every=0,
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


@pytest.fixture(scope="session")
def small_base(tmp_path_factory):
    """A tiny base pretrained for a few seconds, shared by the tests that run whole cells."""
    from harness.processes.masked.pretrain import pretrain

    folder = tmp_path_factory.mktemp("base") / "tiny"
    pretrain(SMALL_BASE, folder, show_progress=False)
    return folder


# Tiny random-weight LLaDA / Dream folders from the released code (tests/released_models.py);
# each is built once per session, and each test loads its own model from it.
@pytest.fixture(scope="session")
def released_folder(tmp_path_factory):
    """Factory: released_folder("llada" | "dream" | "dream-hub") -> the model folder."""
    from tests.released_models import build_dream, build_llada

    builders = {
        "llada": build_llada,
        "dream": build_dream,
        "dream-hub": lambda path: build_dream(path, hub_mask=True),
    }
    built = {}

    def get(kind: str):
        if kind not in built:
            built[kind] = builders[kind](tmp_path_factory.mktemp(kind))
        return built[kind]

    return get


@pytest.fixture(scope="session")
def llada_folder(released_folder):
    return released_folder("llada")


@pytest.fixture(scope="session", params=["dream", "dream-hub"])
def dream_folder(request, released_folder):
    """Dream as shipped in the fixture, and with the hub's mask behaviour (both, parametrized)."""
    return released_folder(request.param)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run much faster on one thread on a busy machine (no OpenMP spinning)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def bench_run(monkeypatch, capsys):
    """``bench run ARGS`` in this process (one CPU device, no live view): (exit code, stderr)."""
    import sys

    from harness.cli import main

    def run(args: list[str]) -> tuple[int, str]:
        argv = ["bench", "run", "--no-progress", "--devices", "cpu", *args]
        monkeypatch.setattr(sys, "argv", argv)
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code or 0
        return code, capsys.readouterr().err

    return run
