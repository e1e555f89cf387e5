"""The authors' sampler code, loaded at test time from ``../shared/fixtures/reference-code/``
(never copied into the project), and tiny models prepared for comparisons with it.

- :func:`reference_module` imports one reference file by path under a private name (LLaDA's and
  Fast-dLLM's ``generate.py`` share a module name); Fast-dLLM's imports its modified
  ``model.modeling_llada``, so its folder is put on ``sys.path`` for the import.
- :func:`fastdllm_llada` builds Fast-dLLM's modified LLaDA (``past_key_values``,
  ``replace_position``) from a tiny released folder's config, with given weights: the reference
  side of the cache comparisons; bench runs on the released code with the same weights.
- Both LLaDA configuration files register themselves with transformers' ``AutoConfig`` under
  "llada" when imported; the registry is put back after every import here, so released folders
  keep loading with their own classes.
- :func:`peaked` sharpens a random-weight model so that its predictions differ from position to
  position and its confidences do not tie: the final norm at 1, the blocks' matrices and the
  output head scaled up.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import torch

_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "reference-code"
_PATH = Path(os.environ.get("BENCH_REFERENCE_CODE", _DEFAULT))
REFERENCE: Path | None = _PATH if _PATH.is_dir() else None
SKIP_REASON = (
    f"the authors' sampler code is not here ({_PATH}: ../shared/fixtures/reference-code is "
    "absent); these conformance tests need it"
)
_loaded: dict[str, object] = {}


def require_reference() -> Path:
    import pytest

    if REFERENCE is None:
        pytest.skip(SKIP_REASON)
    return REFERENCE


@contextlib.contextmanager
def _auto_registry_kept():
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    before = dict(CONFIG_MAPPING._extra_content)
    try:
        yield
    finally:
        CONFIG_MAPPING._extra_content.clear()
        CONFIG_MAPPING._extra_content.update(before)


def reference_module(relative: str):
    """``samplers/llada/generate.py`` etc., imported once per session."""
    if relative not in _loaded:
        path = require_reference() / relative
        name = "bench_reference_" + relative.replace("/", "_").replace("-", "_").removesuffix(".py")
        sys.path.insert(0, str(path.parent))
        try:
            with _auto_registry_kept():
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.parent))
        _loaded[relative] = module
    return _loaded[relative]


def fastdllm_llada(released: Path, state_dict: dict) -> torch.nn.Module:
    """Fast-dLLM's LLaDAModelLM with the released folder's config and the given weights."""
    generate = reference_module("samplers/fast-dllm-llada/generate.py")
    modeling = sys.modules[generate.LLaDAModelLM.__module__]
    config = modeling.LLaDAConfig(**json.loads((Path(released) / "config.json").read_text()))
    model = generate.LLaDAModelLM(config, init_params=False)
    model.config.use_cache = False  # its forward reads it; transformers 5 configs drop it
    model.load_state_dict(state_dict)
    return model.eval()


@torch.no_grad()
def peaked(dlm, head: float = 300.0, blocks: float = 30.0):
    """Diverse, confident predictions from random weights (see the module docstring)."""
    params = dict(dlm.backbone.named_parameters())
    out = params.get("model.transformer.ff_out.weight", params.get("lm_head.weight"))
    for name, p in params.items():
        if p is out:
            continue
        if p.dim() == 1 and ("norm" in name or "ln_f" in name):
            p.fill_(1.0)
        elif p.dim() == 2 and "wte" not in name and "embed_tokens" not in name:
            p.mul_(blocks)
    out.mul_(head)
    return dlm.eval()
