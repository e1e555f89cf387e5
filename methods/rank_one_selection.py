"""Which fine-tuning sequences a rank-one LoRA gets labelled: random or active.

The theory proposes active fine-tuning (choosing the samples to label) but its rule could not be
read (../shared/notes/lora-theory.md, experiment C), so two candidate rules are implemented, both
**assumptions**. From a pool of ``pool * n_ft`` unlabelled sequences, 10% of the budget is
picked at random (the first sequences of the pool), then ``rounds - 1`` equal chunks are picked
greedily, refitting ``u`` on everything labelled so far before each chunk:

- ``gradient``: largest ``||d y_hat / d u||_F`` at the current ``u`` (expected gradient length);
- ``excitation``: largest ``max_{a != b} |x_a^T u| |x_b^T u|`` (inputs that excite the learned
  direction, the only part of the attention index the update changes).

``random`` labels the first ``n_ft`` sequences of the same pool (the pool is i.i.d., so they are a
random sample), so active and random cells of one seed share the pool and the initial picks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from harness.ground.theory_attention import rank_one_index
from methods.rank_one_lora import RankOneLoraConfig, fit_rank_one

INITIAL_SHARE = 0.1


def gradient_scores(h0: torch.Tensor, x: torch.Tensor, u: torch.Tensor, beta: float):
    """``||d y_hat / d u||_F`` of every sequence of ``x`` at ``u`` (``h0``: the base's index).

    With ``p = x u``: ``dh_ab/du = (p_b x_a + p_a x_b - 2 delta_ab u) / d`` and, through the
    row softmax, ``dy_ab/du = beta y_ab (dh_ab/du - sum_c y_ac dh_ac/du)``."""
    n, length, d = x.shape
    p = x @ u
    eye = torch.eye(length, dtype=x.dtype)
    dh = p[:, None, :, None] * x[:, :, None, :] + p[:, :, None, None] * x[:, None, :, :]
    dh = (dh - 2 * eye[None, :, :, None] * u) / d  # [n, L, L, d]
    y = torch.softmax(beta * (h0 + rank_one_index(x, u)), dim=-1)
    mean = torch.einsum("nac,nack->nak", y, dh)
    jac = beta * y[..., None] * (dh - mean[:, :, None, :])
    return jac.flatten(1).norm(dim=1)


def excitation_scores(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``max_{a != b} |x_a^T u| |x_b^T u|`` of every sequence of ``x``."""
    proj = (x @ u).abs()  # [n, L]
    pairs = proj[:, :, None] * proj[:, None, :]
    eye = torch.eye(x.shape[1], dtype=torch.bool)
    return pairs.masked_fill(eye, float("-inf")).flatten(1).max(dim=1).values


def select(
    h0: torch.Tensor,
    pool: torch.Tensor,
    labels: Callable[[torch.Tensor], torch.Tensor],
    n_ft: int,
    beta: float,
    config: RankOneLoraConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Indices into ``pool`` of the ``n_ft`` sequences to label; ``h0`` is the base's index of
    the pool, ``labels(indices)`` reveals the (noisy) labels of sequences already picked."""
    if config.selection == "random":
        return torch.arange(n_ft)
    picked = torch.arange(max(1, round(INITIAL_SHARE * n_ft)))
    chunks = max(1, config.rounds - 1)
    remaining = n_ft - len(picked)
    u = None
    for i in range(chunks):
        size = remaining // chunks + (1 if i < remaining % chunks else 0)
        if size == 0:
            continue
        u = fit_rank_one(h0[picked], pool[picked], labels(picked), beta, config, generator)
        if config.selection == "gradient":
            scores = gradient_scores(h0, pool, u, beta)
        else:
            scores = excitation_scores(pool, u)
        scores[picked] = float("-inf")
        picked = torch.cat([picked, scores.topk(size).indices])
    return picked
