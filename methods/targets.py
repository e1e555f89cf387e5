"""Which linear layers a method adapts: the family's defaults (``Family.default_targets``, in each
family's module under harness/models/) resolved on a real model.

Every method in a comparison adapts the same layers, so the targets are resolved here once, by
short names (the last component of a module name, as peft matches them), and checked against the
model: a name that matches no ``nn.Linear`` is an error that lists the linear names that do exist.

Module names by family (attention first, MLP second):

| family | attention (default targets) | MLP (opt-in) |
|---|---|---|
| tiny  | q_proj, k_proj, v_proj, o_proj | gate_proj, up_proj, down_proj |
| llada | q_proj, k_proj, v_proj, attn_out | ff_proj, up_proj, ff_out |
| dream | q_proj, k_proj, v_proj, o_proj | gate_proj, up_proj, down_proj |
| tiny-ar, llama, qwen2 (autoregressive) | q_proj, k_proj, v_proj, o_proj | gate_proj, up_proj, down_proj |
| diffusion_gemma | q_proj, k_proj, v_proj, o_proj (encoder and decoder) | gate_proj, up_proj, down_proj |

DiffusionGemma's short names match its text encoder and its decoder (shared weights, separate
modules: each gets its own adapter) and, for the MLP names, the decoder's self-conditioning block;
the vision tower's layers are ``...q_proj.linear`` and never match. Its full-attention layers have
no ``v_proj`` (keys are values there). Its MoE experts are 3-D parameters, not linear layers: not
adapted.

LLaDA's output head is also called ``ff_out`` (``model.transformer.ff_out``): targeting ``ff_out``
matches it too unless the backbone reports it through ``get_output_embeddings()``, in which case
it is left out here.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from harness.ground.errors import BenchError


def _output_head(model: nn.Module) -> nn.Module | None:
    getter = getattr(model, "get_output_embeddings", None)
    if getter is None:
        return None
    try:
        return getter()
    except (NotImplementedError, AttributeError):
        return None


def linear_modules(model: nn.Module) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` of the model by full name, the output head left out."""
    head = _output_head(model)
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module is not head and name
    }


def _matches(full_name: str, target: str) -> bool:
    return full_name == target or full_name.endswith("." + target)


def resolve_targets(
    model: nn.Module, family, targets: Sequence[str] | None = None
) -> dict[str, str]:
    """Map each adapted module's full name to the target name that selected it.

    ``family`` is the base's family record (:class:`harness.models.family.Family`: ``name`` and
    ``default_targets``); ``targets`` None means the family default. Raises :class:`BenchError` when a target matches no
    linear layer, naming the missing targets and the linear layer names that exist.
    """
    wanted = tuple(targets) if targets is not None else family.default_targets
    if not wanted:
        raise BenchError("target_modules is empty: name at least one linear layer to adapt")
    linears = linear_modules(model)
    resolved: dict[str, str] = {}
    missing = []
    for target in wanted:
        hits = [name for name in linears if _matches(name, target)]
        if not hits:
            missing.append(target)
        for name in hits:
            resolved.setdefault(name, target)
    if missing:
        existing = sorted({name.rsplit(".", 1)[-1] for name in linears})
        raise BenchError(
            f"target module(s) {', '.join(missing)} not found in the {family.name} model; "
            f"its linear layers are named: {', '.join(existing) or '(none)'}"
        )
    return dict(sorted(resolved.items()))


def module_type(full_name: str) -> str:
    """The layer type used to group statistics and cores: the last component, e.g. ``q_proj``."""
    return full_name.rsplit(".", 1)[-1]
