"""Per-example routing of binned LoRA: which bin adapter each example of a forward uses.

Binned LoRA keeps K ordinary peft LoRA adapters (``bin0`` ... ``bin{K-1}``) on the same layers;
example i of a forward uses adapter ``min(K-1, floor(t_i K))``. peft's own mixed-batch path
(``adapter_names=[...]``) cannot serve here: it refuses training mode and bypasses custom
layers. So :class:`BinRouter` subscribes to the model's noise channel (as NaRA's core bank
does), turns the per-example levels into per-bin row indices ONCE per forward, and every
:class:`BinnedLoraLinear` adds each bin's update to that bin's rows only:

    y = W0 x;  y[rows_k] += s * B_k A_k dropout_k(x[rows_k])   for every bin k present

When every row of the batch falls in one bin (always with K = 1, and at every sampling step of
prompts that share a generation length) the layer runs peft's own LoRA expression on the whole
batch, so K = 1 is plain LoRA operation for operation. Bins with no rows take no part in the
graph: their factors get no gradient, and AdamW (which skips parameters without a gradient)
leaves them untouched. The routing stays set after the forward, so layers recomputed under
gradient checkpointing use the same rows.
"""

from __future__ import annotations

from typing import Any

import torch
from peft.tuners.lora.layer import Linear as PeftLoraLinear

from methods.core import base_layer_output, peft_forward_applies

# floor(t K) is taken of t K + this: a level exactly on a bin edge (n / L in sampling or
# likelihood scoring, stored in float32) lands in the upper bin whatever the float rounding.
# Safe while 1 / L exceeds it, i.e. for any response shorter than 100,000 tokens.
EDGE_TOLERANCE = 1e-5


def bin_name(k: int) -> str:
    return f"bin{k}"


def bin_of(level: torch.Tensor, bins: int) -> torch.Tensor:
    """min(K-1, floor(t K)) per example, as a long tensor of the level's shape."""
    scaled = level.double() * bins + EDGE_TOLERANCE
    return scaled.floor().long().clamp(0, bins - 1)


def bin_edges(bins: int) -> list[tuple[float, float]]:
    """[k/K, (k+1)/K) for each bin (the last one closed at 1)."""
    return [(k / bins, (k + 1) / bins) for k in range(bins)]


class BinRouter:
    """The rows of each bin in the current forward, computed once from the noise channel."""

    def __init__(self, bins: int) -> None:
        self.bins = bins
        self.names = [bin_name(k) for k in range(bins)]
        self.assignment: torch.Tensor | None = None  # (batch,) bin of every example
        self._routes: list[tuple[str, torch.Tensor | None]] = []

    # called by the noise channel, inside the caller's forward
    def on_level(self, level: torch.Tensor) -> None:
        assignment = bin_of(level, self.bins)
        counts = torch.bincount(assignment, minlength=self.bins).tolist()  # one host sync
        batch = assignment.numel()
        if batch in counts:  # the whole batch in one bin: peft's own expression on all rows
            self._routes = [(self.names[counts.index(batch)], None)]
        else:
            order = torch.argsort(assignment, stable=True)
            self._routes = [
                (self.names[k], rows) for k, rows in enumerate(order.split(counts)) if counts[k] > 0
            ]
        self.assignment = assignment

    def routes(self, batch: int) -> list[tuple[str, torch.Tensor | None]]:
        """(adapter name, its row indices or None for all rows) for a layer input of ``batch``."""
        if self.assignment is None:
            raise RuntimeError(
                "binned LoRA needs the noise level: call the model through DiffusionLM.forward"
            )
        if self.assignment.numel() != batch:
            raise RuntimeError(
                f"the noise level has batch {self.assignment.numel()} but the layer input has "
                f"batch {batch}: pass one level per example"
            )
        return self._routes


class BinnedLoraLinear(PeftLoraLinear):
    """peft's LoRA Linear whose active bin adapters each update only their own rows.

    A layer with no router bound, merged, disabled, or called with peft's explicit
    ``adapter_names`` behaves exactly like peft's LoRA.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bench_router: BinRouter | None = None  # shared by every layer; not a submodule

    def bind_router(self, router: BinRouter) -> None:
        self._bench_router = router

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        router = self._bench_router
        if router is None or peft_forward_applies(self, kwargs):
            return super().forward(x, *args, **kwargs)
        result = base_layer_output(self, x, *args, **kwargs)
        result_dtype = result.dtype
        active = set(self.active_adapters)
        for name, rows in router.routes(x.shape[0]):
            if name not in active or name not in self.lora_A:
                continue
            lora_a, lora_b = self.lora_A[name], self.lora_B[name]
            dropout, scaling = self.lora_dropout[name], self.scaling[name]
            xa = self._cast_input_dtype(x, lora_a.weight.dtype)
            if rows is None:
                result = result + lora_b(lora_a(dropout(xa))) * scaling
            else:
                update = lora_b(lora_a(dropout(xa.index_select(0, rows)))) * scaling
                result = result.index_add(0, rows, update.to(result.dtype))
        return result.to(result_dtype)
