"""The theory sandbox's method: a tied rank-one LoRA update of one attention layer.

The base matrix ``S0`` (pre-trained, frozen) becomes ``S0 + u u^T / sqrt(d)``; only ``u`` (``d``
parameters) is trained, by full-batch Adam on ``(sum_i ||y_hat_i - y_i||^2 + ridge ||u||^2) / d``
(../shared/notes/lora-theory.md, section 2; the scalings are assumptions, see
``tasks/attention_lora.py``). The learned direction is compared with the teacher's ``u*`` by
``cos(u, u*) = |u^T u*| / (||u|| ||u*||)`` (``u`` and ``-u`` give the same update).

Initialisation: at ``u = 0`` the gradient of a tied rank-one update vanishes, so gradient descent
from a small random ``u`` first grows the top eigenvector of ``-dL/dS`` at ``S0`` (the loss is
``L(S0 + u u^T / sqrt(d))``, whose gradient in ``u`` is ``2 (dL/dS) u / sqrt(d)``).
``init="spectral"`` starts there directly, at the scale that minimises the loss along it;
Adam from a small random ``u`` (``init="random"``, the note's recipe) moves by sign and got
stuck in a wrong direction at d = 100 even from an exact base with plenty of data.

``selection`` picks which fine-tuning sequences get labelled (``methods/rank_one_selection.py``).
The method is registered like the others, but it adapts the sandbox's attention model, never a
dLLM: its cells run in ``harness/run/theory_cell.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from harness.ground.errors import BenchError
from harness.ground.theory_attention import rank_one_index, sequence_errors
from methods.base import Method, MethodConfig
from methods.registry import register_method

INITS = ("spectral", "random")
SELECTIONS = ("random", "gradient", "excitation")
SCALE_GRID = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.4, 2.0, 3.0)  # |u| / sqrt(d) tried at init


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class RankOneLoraConfig(MethodConfig):
    """Rank 1 and no dropout by construction; the optimiser and the sample selection."""

    rank: int = field(default=1, metadata=_help("always 1: the theory's rank-one update"))
    dropout: float = field(default=0.0, metadata=_help("always 0 (full-batch regression)"))
    ridge: float = field(default=1e-4, metadata=_help("ridge strength on u (lambda_ft)"))
    steps: int = field(default=300, metadata=_help("full-batch Adam steps"))
    lr: float = field(default=0.05, metadata=_help("Adam learning rate"))
    init: str = field(default="spectral", metadata=_help("spectral | random"))
    init_scale: float = field(default=0.01, metadata=_help("std of u's entries for init=random"))
    selection: str = field(
        default="random", metadata=_help("fine-tuning samples: random | gradient | excitation")
    )
    rounds: int = field(default=10, metadata=_help("active selection: refits of u while picking"))

    def validate(self) -> None:
        if self.rank != 1 or isinstance(self.rank, bool):
            raise BenchError(f"rank_one_lora has rank 1 (use --ranks 1), got rank={self.rank!r}")
        if self.dropout != 0.0:
            raise BenchError(f"rank_one_lora has no dropout, got dropout={self.dropout!r}")
        if self.alpha is not None or self.scaling != "alpha_over_r":
            raise BenchError("rank_one_lora has no alpha or scaling: the update is u u^T/sqrt(d)")
        if self.target_modules is not None:
            raise BenchError("rank_one_lora adapts the sandbox's one attention layer: no targets")
        if not _finite(self.ridge) or self.ridge < 0:
            raise BenchError(f"rank_one_lora.ridge must be a number >= 0, got {self.ridge!r}")
        for name in ("steps", "rounds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise BenchError(f"rank_one_lora.{name} must be a positive integer, got {value!r}")
        for name in ("lr", "init_scale"):
            if not _finite(getattr(self, name)) or not getattr(self, name) > 0:
                raise BenchError(
                    f"rank_one_lora.{name} must be positive, got {getattr(self, name)!r}"
                )
        if self.init not in INITS:
            raise BenchError(
                f"rank_one_lora.init must be one of {', '.join(INITS)}, got {self.init!r}"
            )
        if self.selection not in SELECTIONS:
            raise BenchError(
                f"rank_one_lora.selection must be one of {', '.join(SELECTIONS)}, "
                f"got {self.selection!r}"
            )


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class RankOneLoraMethod(Method):
    name = "rank_one_lora"
    description = "theory sandbox: tied rank-one update S0 + u u^T / sqrt(d) of one attention layer"
    config_cls = RankOneLoraConfig

    def apply(self, dlm, config=None):
        raise BenchError(
            "rank_one_lora adapts the theory sandbox's attention layer (--model attention "
            "--tasks attention_lora), not a dLLM"
        )

    def load(self, dlm_base, folder, trainable: bool = False):
        return self.apply(dlm_base)


def fine_tune_loss(
    h0: torch.Tensor, x: torch.Tensor, y: torch.Tensor, u: torch.Tensor, beta: float, ridge: float
) -> torch.Tensor:
    """The fine-tuning objective; ``h0`` is the frozen base's attention index of ``x``."""
    d = u.shape[0]
    y_hat = torch.softmax(beta * (h0 + rank_one_index(x, u)), dim=-1)
    return (sequence_errors(y_hat, y).sum() + ridge * (u**2).sum()) / d


def base_gradient(h0: torch.Tensor, x: torch.Tensor, y: torch.Tensor, beta: float) -> torch.Tensor:
    """``dL/dS`` of the data term at the base, symmetrised: ``sum_i sum_ab g_iab (x_ia x_ib^T -
    delta_ab I) / sqrt(d)`` with ``g = dL/dh`` at the base's index ``h0``."""
    d = x.shape[-1]
    h = h0.detach().clone().requires_grad_(True)
    sequence_errors(torch.softmax(beta * h, dim=-1), y).sum().backward()
    g = h.grad
    grad = torch.einsum("nab,nad,nbe->de", g, x, x)
    grad = grad - torch.eye(d, dtype=x.dtype) * torch.diagonal(g, dim1=1, dim2=2).sum()
    return (grad + grad.T) / (2 * math.sqrt(d))


def spectral_start(
    h0: torch.Tensor, x: torch.Tensor, y: torch.Tensor, beta: float, ridge: float
) -> torch.Tensor:
    """The top eigenvector of ``-dL/dS`` at the base, scaled to the best loss on a grid."""
    d = x.shape[-1]
    _, vectors = torch.linalg.eigh(-base_gradient(h0, x, y, beta))
    direction = vectors[:, -1] * math.sqrt(d)
    with torch.no_grad():
        losses = [fine_tune_loss(h0, x, y, c * direction, beta, ridge) for c in SCALE_GRID]
    return SCALE_GRID[int(torch.stack(losses).argmin())] * direction


def fit_rank_one(
    h0: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    beta: float,
    config: RankOneLoraConfig,
    generator: torch.Generator,
    start: torch.Tensor | None = None,
    steps: int | None = None,
    curve: list[tuple[int, float]] | None = None,
) -> torch.Tensor:
    """Fit ``u`` on ``(x, y)`` over the frozen base whose index of ``x`` is ``h0`` (see
    :func:`harness.ground.theory_attention.attention_index`), from ``start`` (default:
    ``config.init``); returns ``u``. ``curve`` receives (step, loss) every 10th step and last."""
    d = x.shape[-1]
    if start is not None:
        u0 = start.clone()
    elif config.init == "spectral":
        u0 = spectral_start(h0, x, y, beta, config.ridge)
    else:
        u0 = config.init_scale * torch.randn(d, generator=generator, dtype=x.dtype)
    u = u0.detach().requires_grad_(True)
    optimizer = torch.optim.Adam([u], lr=config.lr)
    total = steps or config.steps
    for step in range(total):
        optimizer.zero_grad(set_to_none=True)
        loss = fine_tune_loss(h0, x, y, u, beta, config.ridge)
        loss.backward()
        optimizer.step()
        if curve is not None and (step % 10 == 0 or step == total - 1):
            curve.append((step, float(loss.detach())))
    return u.detach()


def alignment(u: torch.Tensor, u_star: torch.Tensor) -> float:
    """``|u^T u*| / (||u|| ||u*||)``; 0 for ``u = 0`` (a ridge can shrink it away)."""
    norm = float(u.norm() * u_star.norm())
    return abs(float(u @ u_star)) / norm if norm > 0 else 0.0


register_method(RankOneLoraMethod())
