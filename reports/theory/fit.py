"""Fitting the effective noise: which label-noise variance makes an exact-base fine-tuning curve
match the curve of a pre-trained base.

The control curves are measured at a few noise variances ``Delta_j`` (the grid's
``attention_lora.noise`` values, exact base). Between them a curve is interpolated linearly in
``sqrt(Delta)`` at every ``alpha_ft``; ``Delta_eff`` minimises the squared difference to the
target curve summed over ``alpha_ft`` (a grid search over ``sqrt(Delta)``, so the fit never
leaves the measured range, and says so when it ends on its edge).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID_POINTS = 401


@dataclass(frozen=True)
class NoiseFit:
    delta: float  # the fitted variance
    rms: float  # root-mean-square residual over alpha_ft at the fit
    at_edge: bool  # the minimum is at the largest measured variance: the true one may be larger
    deltas: np.ndarray  # the searched variances
    objective: np.ndarray  # rms residual at each searched variance


def control_curve(noises: np.ndarray, curves: np.ndarray, delta: float) -> np.ndarray:
    """The control curve at variance ``delta``: ``curves[j]`` is the curve at ``noises[j]``
    (sorted), interpolated linearly in ``sqrt(noise)`` at every alpha_ft."""
    roots = np.sqrt(noises)
    return np.array(
        [np.interp(np.sqrt(delta), roots, curves[:, k]) for k in range(curves.shape[1])]
    )


def fit_noise(noises, curves, target) -> NoiseFit:
    """Fit ``Delta_eff`` of ``target`` (one value per alpha_ft) against the control ``curves``
    (one row per noise variance in ``noises``, same alpha_ft columns). NaNs are ignored."""
    noises, curves, target = (
        np.asarray(noises, float),
        np.asarray(curves, float),
        np.asarray(target, float),
    )
    order = np.argsort(noises)
    noises, curves = noises[order], curves[order]
    roots = np.linspace(np.sqrt(noises[0]), np.sqrt(noises[-1]), GRID_POINTS)
    deltas = roots**2
    objective = np.empty(len(deltas))
    for i, delta in enumerate(deltas):
        diff = control_curve(noises, curves, delta) - target
        objective[i] = np.sqrt(np.nanmean(diff**2))
    best = int(np.nanargmin(objective))
    edge = best == len(deltas) - 1 and len(deltas) > 1
    return NoiseFit(float(deltas[best]), float(objective[best]), edge, deltas, objective)
