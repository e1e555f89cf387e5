"""The theory sandbox's task: a teacher-student data model for rank-one LoRA in one attention
layer (Duranthon, Boncoraglio, Zdeborova, arXiv 2606.05899; see ../shared/notes/lora-theory.md).

Two stages share one teacher, drawn from the cell's seed:

- **pre-training** (data-rich): ``n_pre = alpha_pre d^2`` sequences labelled by the teacher
  ``S*_pre = W* W*^T / sqrt(r d)``, ``W*`` Gaussian of width ``r = width d``;
- **fine-tuning** (scarce): ``n_ft = alpha_ft d`` sequences labelled by the shifted teacher
  ``S*_ft = S*_pre + shift u* u*^T / sqrt(d)``, ``u* ~ N(0, I_d)``, plus Gaussian label noise of
  variance ``noise`` on every output entry. Tokens are i.i.d. ``N(0, I_d)``.

The test set is fresh noiseless sequences of the fine-tuning teacher. **Assumptions** (the paper's
body was not readable when this was written; the note infers the model from the authors'
predecessors): the tied attention-indexed layer itself, Gaussian tokens and teachers, the
sample scalings ``n_pre ~ d^2`` and ``n_ft ~ d``, the ``1/sqrt(d)`` scale of the rank-one shift,
squared loss with a ridge, and additive Gaussian label noise as the control for "effective noise".

Settings are grid axes: ``--set attention_lora.alpha_ft=0.5,1,2``. Every random draw has its own
generator derived from (seed, purpose), so two cells with the same seed share their teacher,
their fine-tuning inputs and their test set, and differ only in what their settings change: the
comparisons the presets make are paired.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, fields

import torch

from harness.ground.errors import BenchError
from harness.ground.theory_attention import attention_output, rank_one_matrix, tied_matrix
from tasks.base import TaskSpec

TASK_NAME = "attention_lora"


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class AttentionLoraData:
    """The data model of one cell (``--set attention_lora.FIELD=...``)."""

    d: int = field(default=100, metadata=_help("token dimension"))
    seq_len: int = field(default=2, metadata=_help("tokens per sequence L"))
    width: float = field(default=0.5, metadata=_help("teacher width r / d"))
    beta: float = field(default=1.0, metadata=_help("softmax inverse temperature"))
    shift: float = field(default=1.0, metadata=_help("strength of the rank-one teacher shift"))
    alpha_pre: float | None = field(
        default=0.3, metadata=_help("pre-training samples / d^2; none = the exact teacher as base")
    )
    pre_ridge: float = field(default=1e-4, metadata=_help("ridge on W in pre-training"))
    pre_steps: int = field(default=1000, metadata=_help("full-batch Adam steps of pre-training"))
    pre_lr: float = field(default=0.05, metadata=_help("Adam learning rate of pre-training"))
    alpha_ft: float = field(default=2.0, metadata=_help("fine-tuning samples / d"))
    noise: float = field(default=0.0, metadata=_help("label-noise variance in fine-tuning"))
    pool: int = field(default=20, metadata=_help("unlabelled pool / n_ft for active selection"))
    n_test: int = field(default=2000, metadata=_help("fresh test sequences"))

    def __post_init__(self) -> None:
        for name in ("d", "seq_len", "pre_steps", "pool", "n_test"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise BenchError(f"attention_lora.{name} must be a positive integer, got {value!r}")
        if self.seq_len < 2:
            raise BenchError(f"attention_lora.seq_len must be at least 2, got {self.seq_len}")
        for name in ("width", "beta", "pre_lr", "alpha_ft"):
            value = getattr(self, name)
            if not _number(value) or not value > 0:
                raise BenchError(f"attention_lora.{name} must be a positive number, got {value!r}")
        for name in ("shift", "pre_ridge", "noise"):
            value = getattr(self, name)
            if not _number(value) or value < 0:
                raise BenchError(f"attention_lora.{name} must be a number >= 0, got {value!r}")
        if self.alpha_pre is not None and (not _number(self.alpha_pre) or self.alpha_pre <= 0):
            raise BenchError(
                f"attention_lora.alpha_pre must be a positive number or none (the exact "
                f"teacher as base), got {self.alpha_pre!r}"
            )
        if self.rank < 1 or self.n_ft < 1:
            raise BenchError(
                f"attention_lora: width {self.width} and alpha_ft {self.alpha_ft} at d={self.d} "
                "leave no teacher column or no fine-tuning sample"
            )

    @property
    def rank(self) -> int:
        return int(round(self.width * self.d))

    @property
    def n_pre(self) -> int | None:
        return None if self.alpha_pre is None else max(1, round(self.alpha_pre * self.d**2))

    @property
    def n_ft(self) -> int:
        return round(self.alpha_ft * self.d)

    def pretraining_identity(self) -> dict:
        """What the pre-trained base depends on (with the seed): its cache key."""
        keep = ("d", "seq_len", "width", "beta", "alpha_pre", "pre_ridge", "pre_steps", "pre_lr")
        return {name: getattr(self, name) for name in keep}

    @classmethod
    def from_dict(cls, data: dict) -> AttentionLoraData:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise BenchError(
                f"unknown setting attention_lora.{unknown[0]}; valid attention_lora fields: "
                f"{', '.join(sorted(names))}"
            )
        return cls(**data)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def generator(seed: int, purpose: str) -> torch.Generator:
    """An independent stream per (seed, purpose): teacher, pre, ft, pool, noise, test, init."""
    digest = hashlib.sha256(f"attention_lora/{seed}/{purpose}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


@dataclass(frozen=True)
class Teacher:
    s_pre: torch.Tensor  # [d, d], the pre-training teacher
    u_star: torch.Tensor  # [d], the fine-tuning direction
    s_ft: torch.Tensor  # [d, d], s_pre + shift u* u*^T / sqrt(d)


def make_teacher(data: AttentionLoraData, seed: int) -> Teacher:
    g = generator(seed, "teacher")
    w = torch.randn(data.d, data.rank, generator=g)
    u_star = torch.randn(data.d, generator=g)
    s_pre = tied_matrix(w)
    return Teacher(s_pre, u_star, s_pre + data.shift * rank_one_matrix(u_star))


BLOCK = 256  # sequences per generator: a sample's first n sequences never depend on its size


def _blocks(n: int, shape: tuple[int, ...], seed: int, purpose: str) -> torch.Tensor:
    """``n`` standard Gaussian draws of ``shape``, in blocks with a generator each, so that the
    first ``m`` rows of a draw of ``n`` equal a draw of ``m``."""
    blocks = [
        torch.randn(BLOCK, *shape, generator=generator(seed, f"{purpose}/{i}"))
        for i in range(-(-n // BLOCK))
    ]
    return torch.cat(blocks)[:n]


def sample_inputs(data: AttentionLoraData, n: int, seed: int, purpose: str) -> torch.Tensor:
    """``n`` sequences ``[n, L, d]`` of i.i.d. standard Gaussian tokens. The first ``m`` of a
    pool are the same sequences whatever the pool's size (random selection labels them)."""
    return _blocks(n, (data.seq_len, data.d), seed, purpose)


def label(data: AttentionLoraData, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return attention_output(x, s, data.beta)


def pool_noise(data: AttentionLoraData, pool_size: int, seed: int) -> torch.Tensor:
    """Label noise of variance ``data.noise`` for every sequence of a pool, ``[pool, L, L]``.
    A sequence's noise depends only on its place in the pool, so an active and a random
    selection see the same noise on the sequences they share."""
    shape = (data.seq_len, data.seq_len)
    if data.noise == 0:
        return torch.zeros(pool_size, *shape)
    return math.sqrt(data.noise) * _blocks(pool_size, shape, seed, "noise")


def _no_text_split(split: str, n: int, seed: int):
    raise BenchError(
        f"{TASK_NAME} is the theory sandbox's data model (arrays, not text): run it with "
        "--model attention --methods rank_one_lora"
    )


TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(
        name=TASK_NAME,
        suite="theory",  # type: ignore[arg-type]
        kind="regression",  # type: ignore[arg-type]
        protocols=("regression",),  # type: ignore[arg-type]
        default_protocol="regression",  # type: ignore[arg-type]
        metric="test_error",
        make_split=_no_text_split,
        description="rank-one LoRA theory sandbox: tied attention teacher, pre-training then "
        "scarce fine-tuning (settings: --set attention_lora.FIELD)",
        settings=AttentionLoraData,
        meta={"sizes": {"train": "alpha_ft*d", "test": "n_test"}},
    ),
)
