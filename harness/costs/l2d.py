"""L2D's trainable parameters on an architecture, counted from its modules (methods/l2d/modules.py)
without building them: the flow stream's LoRAs and adaLN-Zero heads per decoder layer, plus the
time embedding, the token space, the flow input and the output gate shared by all layers."""

from __future__ import annotations

from harness.costs.architecture import Architecture, target_shapes


def _mlp(width_in: int, width: int, out: int) -> int:
    """Linear(width_in, width) -> SiLU -> Linear(width, out), with biases."""
    return width_in * width + width + width * out + out


def l2d_params(arch: Architecture, config) -> int:
    """Trainable parameters of ``l2d`` with ``config`` (an L2DConfig) on ``arch``."""
    h, w, rep = arch.hidden, config.embed_dim, config.rep_size
    time = _mlp(w, w, w) + (2 * w if config.guided else 0)  # + the class embedding
    tokens = h * rep  # TokenSpace: a projection without bias
    inputs = _mlp(rep, w, h)  # FlowInput
    gate = _mlp(w, w, h)  # OutputGate
    lora = sum(config.rank * (i + o) for i, o in target_shapes(arch, tuple(config.targets)))
    modulation = _mlp(w, w, 6 * h)  # six vectors per position: FlowLayer.modulation
    return time + tokens + inputs + gate + arch.layers * (lora + modulation)
