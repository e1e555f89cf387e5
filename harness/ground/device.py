"""Device helpers every package may use: the autocast a forward runs under."""

from __future__ import annotations

from contextlib import nullcontext

import torch


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA; exact fp32 on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()
