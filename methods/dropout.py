"""LoRA's input dropout drawn by its gaps: the zeros of ``nn.Dropout`` at a twentieth of the
random numbers, on the CPU.

LoRA zeroes each element of its input independently with probability p (0.05 in the release)
and scales the rest by 1 / (1 - p). ``torch.nn.functional.dropout`` draws one random number per
element, and on one CPU thread that draw was the largest cost of a tiny model's LoRA step after
the matmuls (14% of a synth_code_slice cell's training time, one mask per adapted linear per
step). The zeros of an i.i.d. Bernoulli(p) sequence are a renewal process whose gaps are
Geometric(p): drawing the gaps (about p n numbers) and zeroing the positions they land on gives
the same distribution exactly, only another random stream. A GPU draws its masks fast, and a
large p gains nothing, so both keep torch's own dropout.
"""

from __future__ import annotations

import math

import torch
from torch import nn

GAP_DRAW_MAX_P = 0.25  # above this, gaps save little: torch's dropout


class GapDropout(nn.Dropout):
    """``nn.Dropout`` whose training-mode mask on a CPU is drawn by its gaps (same
    distribution, same scaling, the global generator as torch's dropout uses)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or self.p > GAP_DRAW_MAX_P or x.numel() == 0:
            return super().forward(x)
        return x * bernoulli_keep_mask(x.numel(), self.p, x.dtype).view(x.shape)


def bernoulli_keep_mask(n: int, p: float, dtype: torch.dtype) -> torch.Tensor:
    """``n`` values, each independently 0 with probability ``p`` and 1 / (1 - p) otherwise: the
    zeros at the partial sums of Geometric(p) gaps (first position: the first gap minus one)."""
    mask = torch.full((n,), 1.0 / (1.0 - p), dtype=dtype)
    expected = n * p
    draw = int(expected + 6.0 * math.sqrt(expected) + 16)  # rarely short: then draw more
    end = -1.0
    while end < n - 1:
        gaps = torch.empty(draw, dtype=torch.float64).geometric_(p)
        positions = gaps.cumsum_(0).add_(end)
        end = float(positions[-1])
        mask[positions[positions < n].long()] = 0.0
    return mask


def use_gap_dropout(model: nn.Module) -> None:
    """Swap every plain ``nn.Dropout`` inside peft's ``lora_dropout`` dicts for a
    :class:`GapDropout` of the same p (nothing else changes: no parameters, no state)."""
    for module in model.modules():
        dicts = getattr(module, "lora_dropout", None)
        if not isinstance(dicts, nn.ModuleDict):
            continue
        for name, dropout in list(dicts.items()):
            if type(dropout) is nn.Dropout:
                swapped = GapDropout(dropout.p)
                swapped.train(dropout.training)
                dicts[name] = swapped
