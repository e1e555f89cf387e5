"""Model families by name. The released-code families (LLaDA, Dream, DiffusionGemma) live in
modules of their own and are imported the first time they are asked for, so this registry imports
none of them at module level and a family module never imports the registry back.
"""

from __future__ import annotations

import functools
import importlib

from harness.ground.errors import BenchError
from harness.models.family import GENERIC_FAMILY, Family

# name -> (module, attribute) of the family record; each family's module holds everything the
# family needs (loading, repairs, inputs, default targets, cache backend, layer roles).
FAMILY_RECORDS = {
    "tiny": ("harness.models.tiny", "TINY_FAMILY"),
    "llada": ("harness.models.llada", "LLADA"),
    "dream": ("harness.models.dream", "DREAM"),
    "diffusion_gemma": ("harness.models.diffusion_gemma", "DIFFUSION_GEMMA"),
    "tiny-ar": ("harness.models.causal_loader", "TINY_AR_FAMILY"),
    "llama": ("harness.models.causal_loader", "LLAMA_FAMILY"),
    "qwen2": ("harness.models.causal_loader", "QWEN2_FAMILY"),
}
FAMILY_NAMES = ("generic", *FAMILY_RECORDS)


@functools.cache  # the records are constants; wrapped models ask on every forward
def get_family(name: str) -> Family:
    if name == GENERIC_FAMILY.name:
        return GENERIC_FAMILY
    if name not in FAMILY_RECORDS:
        raise BenchError(f"unknown model family {name!r}; valid: {', '.join(FAMILY_NAMES)}")
    module, attribute = FAMILY_RECORDS[name]
    return getattr(importlib.import_module(module), attribute)
