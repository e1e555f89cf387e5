"""Model families by name. The released-code families (LLaDA, Dream, DiffusionGemma) live in
modules of their own and are imported the first time they are asked for, so this registry imports
none of them at module level and a family module never imports the registry back.
"""

from __future__ import annotations

import importlib

from harness.ground.errors import BenchError
from harness.models.family import (
    GENERIC_FAMILY,
    LLAMA_FAMILY,
    QWEN2_FAMILY,
    TINY_AR_FAMILY,
    TINY_FAMILY,
    Family,
)

# name -> (module, attribute) of the family record
FAMILY_RECORDS = {
    "llada": ("harness.models.llada", "LLADA"),
    "dream": ("harness.models.dream", "DREAM"),
    "diffusion_gemma": ("harness.models.diffusion_gemma", "DIFFUSION_GEMMA"),
}
BUILT_IN = {
    f.name: f for f in (TINY_FAMILY, GENERIC_FAMILY, TINY_AR_FAMILY, LLAMA_FAMILY, QWEN2_FAMILY)
}
FAMILY_NAMES = ("tiny", "generic", "llada", "dream", "diffusion_gemma", "tiny-ar", "llama", "qwen2")


def get_family(name: str) -> Family:
    if name in BUILT_IN:
        return BUILT_IN[name]
    if name not in FAMILY_RECORDS:
        raise BenchError(f"unknown model family {name!r}; valid: {', '.join(FAMILY_NAMES)}")
    module, attribute = FAMILY_RECORDS[name]
    return getattr(importlib.import_module(module), attribute)
