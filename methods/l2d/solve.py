"""L2D inference: per token, the main path once (cached), then the flow integrated with torchdiffeq
from noise (t = 0) to data (t = 1), then one final forward at (x(1), t = 1) gives the logits.

Velocity (``../shared/notes/l2d.md`` §4): ``v(x, t) = (x1_hat - x) / (1 - t)``, with ``x1_hat`` the
representation of the argmax token of the logits at (x, t); ``v = 0`` at t >= 1. Guided:
``v = w v_cond + (1 - w) v_uncond`` (two flow evaluations per velocity).

``steps`` counts integration intervals of the fixed-grid solvers (grid ``linspace(0, 1, steps +
1)``): the release's S grid points are ``steps + 1`` here, so its "15 evaluations" (midpoint,
S = 8) is ``steps = 7`` (2 * 7 + 1). We count intervals so that "Euler with one step" is one
update. Adaptive solvers ignore ``steps`` and use the release's rtol = atol = 1e-5, first step 0.05,
and stop with one line after :data:`ADAPTIVE_MAX_STEPS` steps for one token.
Flow evaluations are counted as they happen (the final forward included).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.ground.errors import BenchError

FIXED_SOLVERS = ("euler", "midpoint", "rk4")
ADAPTIVE_SOLVERS = ("adaptive_heun", "bosh3", "dopri5")
SOLVERS = FIXED_SOLVERS + ADAPTIVE_SOLVERS
TOLERANCE = 1e-5
FIRST_STEP = 0.05
# An argmax target that keeps switching along the path makes the error control shrink the step
# without end; past this many accepted-or-rejected steps for one token the evaluation stops.
ADAPTIVE_MAX_STEPS = 500


def check_solver(name: str) -> str:
    if name not in SOLVERS:
        raise BenchError(f"solver {name!r} is not one of: {', '.join(SOLVERS)}")
    return name


def check_steps(steps: int) -> int:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
        raise BenchError(f"l2d_steps must be a positive integer, got {steps!r}")
    return steps


@dataclass
class FlowSettings:
    """How one evaluation integrates the flow (eval.l2d_steps, eval.solver)."""

    steps: int = 7
    solver: str = "midpoint"
    generator: torch.Generator | None = None  # the flow's starting noise

    def __post_init__(self) -> None:
        check_solver(self.solver)
        check_steps(self.steps)


class Velocity(torch.nn.Module):
    """The ODE right-hand side for torchdiffeq, counting its flow evaluations."""

    def __init__(self, model, state, guidance: float) -> None:
        super().__init__()
        self.model, self.state, self.guidance = model, state, guidance
        self.evaluations = 0

    def _target(self, x, t, label):
        logits = self.model.flow_logits(self.state, x, t, label)
        self.evaluations += 1
        return self.model.represent(logits.argmax(dim=-1))

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        level = float(t)
        if level >= 1.0:
            return torch.zeros_like(x)
        times = torch.full(x.shape[:2], level, device=x.device)
        if self.model.config.guided:
            ones = torch.ones(x.shape[0], dtype=torch.long, device=x.device)
            cond = (self._target(x, times, ones) - x) / (1 - level)
            uncond = (self._target(x, times, torch.zeros_like(ones)) - x) / (1 - level)
            return self.guidance * cond + (1 - self.guidance) * uncond
        return (self._target(x, times, None) - x) / (1 - level)


def integrate(model, state, settings: FlowSettings) -> tuple[torch.Tensor, int]:
    """(logits (B, n, V) at the end of the flow, flow evaluations made) for ``state``."""
    from torchdiffeq import odeint

    b, n = state.hidden.shape[:2]
    x0 = model.config.sigma * model.noise((b, n, model.config.rep_size), settings.generator)
    field = Velocity(model, state, model.config.guidance)
    if settings.solver in FIXED_SOLVERS:
        grid = torch.linspace(0.0, 1.0, settings.steps + 1, device=x0.device)
        path = odeint(field, x0, grid, method=settings.solver)
    else:
        grid = torch.tensor([0.0, 1.0], device=x0.device)
        options = {"first_step": FIRST_STEP, "max_num_steps": ADAPTIVE_MAX_STEPS}
        try:
            path = odeint(
                field,
                x0,
                grid,
                method=settings.solver,
                rtol=TOLERANCE,
                atol=TOLERANCE,
                options=options,
            )
        except AssertionError as err:
            if "max_num_steps" not in str(err):
                raise
            raise BenchError(
                f"adaptive solver {settings.solver} took over {ADAPTIVE_MAX_STEPS} steps for one "
                f"token (rtol = atol = {TOLERANCE}: the argmax target keeps switching along the "
                "path); use a fixed-grid solver: " + ", ".join(FIXED_SOLVERS)
            ) from None
    x1 = path[-1]
    ones = torch.ones(b, n, device=x0.device)
    label = torch.ones(b, dtype=torch.long, device=x0.device) if model.config.guided else None
    logits = model.flow_logits(state, x1, ones, label)
    return logits, field.evaluations + 1


@torch.no_grad()
def next_token_logits(model, input_ids, attention_mask, cache, settings: FlowSettings | None):
    """(logits (B, V) of the next token, flow evaluations per row) after ``input_ids``."""
    settings = settings or FlowSettings()
    state, _ = model.main(input_ids, attention_mask, cache, n_query=1)
    logits, evaluations = integrate(model, state, settings)
    return logits[:, -1], evaluations


@torch.no_grad()
def score_logits(model, input_ids, attention_mask, start: int, settings: FlowSettings | None):
    """Logits predicting ``input_ids[:, start:]``: one flow per scored position, all at once
    (flow positions never attend to each other, so they integrate independently)."""
    from transformers import DynamicCache

    settings = settings or FlowSettings()
    cache = DynamicCache(config=model.base.config)
    n = input_ids.shape[1] - start
    context = input_ids[:, :-1]
    mask = None if attention_mask is None else attention_mask[:, :-1]
    state, _ = model.main(context, mask, cache, n_query=n)
    logits, _ = integrate(model, state, settings)
    return logits
