"""The theory sandbox's model: one single-head attention layer with tied query and key.

This is the attention-indexed model of Boncoraglio, Troiani, Erba and Zdeborova (arXiv
2506.01582) as ../shared/notes/lora-theory.md reads it: a sequence ``X`` of ``L`` tokens in
``R^d`` is mapped to the ``L x L`` attention matrix

    h_ab = x_a^T S x_b / sqrt(d) - delta_ab Tr(S) / sqrt(d),    y_a = softmax(beta h_a)

with a symmetric ``S``. The base (pre-trained) layer has ``S = W W^T / sqrt(r d)`` with
``W in R^{d x r}``; the rank-one LoRA update adds ``u u^T / sqrt(d)`` (``methods/rank_one_lora``).
Teacher and student are the same map, so everything here works on an explicit ``S``: the
teacher's, a fitted base's, or a base plus an update. Squared error on ``y`` is the loss and the
test metric. The ``1/sqrt(d)`` of the rank-one term is this harness's assumption (the note
guessed ``1/d``, under which the update's effect on ``h`` vanishes as ``d`` grows).

It is a model like the others in the sense of the grid (``--model attention``), but not a
:class:`~harness.models.dlm.DiffusionLM`: its cells run through ``harness/run/theory_cell.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SANDBOX_MODEL = "attention"


def attention_index(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``h`` of shape ``[n, L, L]`` for inputs ``[n, L, d]`` and a symmetric ``[d, d]`` matrix."""
    d = x.shape[-1]
    h = torch.einsum("nad,de,nbe->nab", x, s, x) / math.sqrt(d)
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    return h - eye * (torch.trace(s) / math.sqrt(d))


def tied_index(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``attention_index(x, tied_matrix(w))`` without forming ``S``: ``(x W)(x W)^T`` costs
    ``r / d`` of ``x S x^T`` (``Tr S = ||W||_F^2 / sqrt(r d)``)."""
    d, r = w.shape
    z = x @ w  # [n, L, r]
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    return (z @ z.transpose(1, 2) - eye * (w**2).sum()) / math.sqrt(r * d * d)


def rank_one_index(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``attention_index(x, rank_one_matrix(u))`` in ``O(n L d)``: ``(p_a p_b - delta_ab
    ||u||^2) / d`` with ``p = x u``. A fine-tuning step adds it to the base's fixed index."""
    p = x @ u  # [n, L]
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    return (p[:, :, None] * p[:, None, :] - eye * (u @ u)) / u.shape[0]


def attention_output(x: torch.Tensor, s: torch.Tensor, beta: float) -> torch.Tensor:
    """The layer's output ``y = softmax(beta h)`` row-wise, ``[n, L, L]``."""
    return torch.softmax(beta * attention_index(x, s), dim=-1)


def tied_matrix(w: torch.Tensor) -> torch.Tensor:
    """``S = W W^T / sqrt(r d)`` of a width-``r`` tied layer."""
    d, r = w.shape
    return w @ w.T / math.sqrt(r * d)


def rank_one_matrix(u: torch.Tensor) -> torch.Tensor:
    """The update ``u u^T / sqrt(d)`` (tied rank-one LoRA)."""
    return torch.outer(u, u) / math.sqrt(u.shape[0])


def sequence_errors(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared error of each sequence, summed over its ``L x L`` outputs: ``[n]``."""
    return ((y_hat - y) ** 2).sum(dim=(1, 2))


def matrix_error(s: torch.Tensor, s_star: torch.Tensor) -> float:
    """``||S - S*||_F^2 / ||S*||_F^2``: how far a fitted matrix is from the teacher's."""
    return float(((s - s_star) ** 2).sum() / (s_star**2).sum())


@dataclass(frozen=True)
class FitConfig:
    """Full-batch Adam on ``(sum_i ||y_hat_i - y_i||^2 + ridge ||W||^2) / d``."""

    steps: int
    lr: float
    ridge: float


def fit_tied_attention(
    x: torch.Tensor,
    y: torch.Tensor,
    width: int,
    beta: float,
    fit: FitConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Pre-train a width-``width`` tied layer on ``(x, y)``; returns the fitted ``S``.

    ``W`` starts Gaussian (the teacher's own scale), so ``S`` starts as a random matrix of the
    right size and the fit only has to rotate it."""
    d = x.shape[-1]
    w = torch.randn(d, width, generator=generator, dtype=x.dtype).requires_grad_(True)
    optimizer = torch.optim.Adam([w], lr=fit.lr)
    for _ in range(fit.steps):
        optimizer.zero_grad(set_to_none=True)
        loss = sequence_errors(torch.softmax(beta * tied_index(x, w), dim=-1), y).sum()
        loss = (loss + fit.ridge * (w**2).sum()) / d
        loss.backward()
        optimizer.step()
    return tied_matrix(w.detach())
