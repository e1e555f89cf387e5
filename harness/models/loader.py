"""One loader for every model the harness can adapt: the embedded tiny dLLM and tiny causal LM,
the real LLaDA and Dream checkpoints and Llama / Qwen2 causal LMs (by alias), or any local folder.

Masked-diffusion bases return a :class:`DiffusionLM`, autoregressive ones a
:class:`~harness.models.causal.CausalLM`; :func:`base_objective` tells which without loading.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.ground.errors import BenchError
from harness.ground.hub import hub_reachable
from harness.models.dlm import DiffusionLM, ModelInfo
from harness.models.registry import get_family
from harness.models.remote import load_remote_model
from harness.models.sanity import check_loaded
from harness.models.tokenizer import CHAR_TOKENIZER_FILE, CharTokenizer, HFTokenizer


@dataclass(frozen=True)
class ModelSpec:
    """A named real checkpoint on the hub."""

    hub_id: str
    family: str  # "llada" | "dream" | "diffusion_gemma"
    instruct: bool
    mask_token_id: int | None = None


MODEL_SPECS: dict[str, ModelSpec] = {
    "llada-8b-instruct": ModelSpec("GSAI-ML/LLaDA-8B-Instruct", "llada", True, 126336),
    "llada-8b-base": ModelSpec("GSAI-ML/LLaDA-8B-Base", "llada", False, 126336),
    "llada-1.5": ModelSpec("GSAI-ML/LLaDA-1.5", "llada", True, 126336),
    "dream-7b-instruct": ModelSpec("Dream-org/Dream-v0-Instruct-7B", "dream", True),
    "dream-7b-base": ModelSpec("Dream-org/Dream-v0-Base-7B", "dream", False),
    # Autoregressive bases (L2D and its LoRA baselines): the paper's models.
    "llama-3.2-1b-instruct": ModelSpec("meta-llama/Llama-3.2-1B-Instruct", "llama", True),
    "llama-3.1-8b-instruct": ModelSpec("meta-llama/Llama-3.1-8B-Instruct", "llama", True),
    "qwen2.5-1.5b-instruct": ModelSpec("Qwen/Qwen2.5-1.5B-Instruct", "qwen2", True),
    "qwen2.5-7b-instruct": ModelSpec("Qwen/Qwen2.5-7B-Instruct", "qwen2", True),
    "diffusiongemma-26b-a4b-it": ModelSpec(
        "google/diffusiongemma-26B-A4B-it", "diffusion_gemma", True
    ),
}
TINY = "tiny"
TINY_AR = "tiny-ar"
BUILT_HERE = (TINY, TINY_AR)


def valid_model_names() -> str:
    from harness.models.sandboxes import SANDBOXES

    return ", ".join([TINY, *MODEL_SPECS, TINY_AR, *SANDBOXES]) + ", or a local model folder"


def known_model(name: str) -> bool:
    """An alias or an existing folder (checked before a grid runs)."""
    return name in BUILT_HERE or name in MODEL_SPECS or Path(name).expanduser().is_dir()


def model_family(name: str) -> str | None:
    """The family of a model name without loading it; None for a name that names no model
    here (a sandbox, an unknown name)."""
    if name in BUILT_HERE:
        return name
    if name in MODEL_SPECS:
        return MODEL_SPECS[name].family
    folder = Path(name).expanduser()
    if (folder / "config.json").is_file():
        return detect_family(folder)
    return None


def base_objective(name: str) -> str:
    """ "masked-diffusion" or "autoregressive" for a model name, without loading it."""
    family = model_family(name)
    if family is None:
        raise BenchError(f"unknown model {name!r}; valid: {valid_model_names()}")
    return get_family(family).objective


def model_folder(name: str) -> Path | None:
    """The folder a model's files are read from, without loading it: a local folder, or an
    alias's snapshot in the local Hugging Face cache; None when they are not here (an alias
    not downloaded, a built-in base not pretrained yet)."""
    if name in BUILT_HERE:
        return None
    folder = Path(name).expanduser()
    if name not in MODEL_SPECS:
        return folder if (folder / "config.json").is_file() else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(MODEL_SPECS[name].hub_id, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise BenchError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"device {device!r} asked for, but no CUDA GPU is visible here")
    return resolved


def detect_family(folder: Path) -> str:
    """Family of a local folder from its config: tiny, llada, dream, diffusion_gemma, generic."""
    config = folder / "config.json"
    if not config.is_file():
        raise BenchError(f"model folder {folder} has no config.json")
    data = json.loads(config.read_text())
    kind = " ".join([str(data.get("model_type", "")), *map(str, data.get("architectures") or [])])
    kind = kind.lower()
    if "bench_tiny_dllm" in kind:
        return "tiny"
    if "diffusion_gemma" in kind or "diffusiongemma" in kind:
        return "diffusion_gemma"
    if (folder / CHAR_TOKENIZER_FILE).is_file() and "llama" in kind:
        return "tiny-ar"  # the harness's own causal base: a small Llama, character tokenizer
    if "llada" in kind:
        return "llada"
    if "dream" in kind:
        return "dream"
    if data.get("model_type") in ("llama", "qwen2"):
        return str(data["model_type"])
    return "generic"


# The tiny bases are pretrained here on first use by their noise process's pretraining, which
# returns the cached folder. Found by module path: the processes build on models, so the loader
# names them rather than importing them.
TINY_BUILDERS = {
    TINY: ("harness.processes.masked.pretrain", "ensure_tiny_base"),
    TINY_AR: ("harness.processes.causal.pretrain", "ensure_tiny_ar_base"),
}


def load_model(name: str, device: str = "auto", mask_token_id: int | None = None) -> DiffusionLM:
    """Load a model by alias or folder; the tiny base is pretrained on first use and cached."""
    target = resolve_device(device)
    if name in TINY_BUILDERS:
        module, function = TINY_BUILDERS[name]
        folder = getattr(importlib.import_module(module), function)()
        return _load_folder(folder, name, target, mask_token_id)
    if name in MODEL_SPECS:
        return _load_hub(name, MODEL_SPECS[name], target, mask_token_id)
    folder = Path(name).expanduser()
    if folder.is_dir():
        return _load_folder(folder, name, target, mask_token_id)
    from harness.models.sandboxes import sandbox_of

    if sandbox_of(name) is not None:
        raise BenchError(
            f"model {name!r} is the {sandbox_of(name).description}, not a diffusion LM: it "
            "runs only in grid cells (bench run --model attention, bench list presets)"
        )
    raise BenchError(f"unknown model {name!r}; valid: {valid_model_names()}")


def _dtype_for(device: torch.device) -> torch.dtype:
    # Real checkpoints are stored in bf16; on the CPU we compute in fp32 for exactness.
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _load_folder(
    folder: Path, name: str, device: torch.device, mask_token_id: int | None
) -> DiffusionLM:
    family = detect_family(folder)
    if family == "tiny":
        from harness.models.tiny import TinyDLLM

        if not (folder / CHAR_TOKENIZER_FILE).is_file():
            raise BenchError(f"tiny model folder {folder} has no {CHAR_TOKENIZER_FILE}")
        backbone = TinyDLLM.from_pretrained(folder).to(device)
        backbone.eval()
        info = ModelInfo(name=name, family=family, source=str(folder))
        return DiffusionLM(backbone, CharTokenizer.from_pretrained(folder), info)
    if family == "tiny-ar":
        from harness.models.causal_loader import load_tiny_ar

        return load_tiny_ar(folder, name, device)
    return _load_transformers(str(folder), name, family, device, mask_token_id)


def _load_hub(
    name: str, spec: ModelSpec, device: torch.device, mask_token_id: int | None
) -> DiffusionLM:
    mask = mask_token_id if mask_token_id is not None else spec.mask_token_id
    try:
        return _load_transformers(
            spec.hub_id, name, spec.family, device, mask, local_files_only=True
        )
    except OSError as cached_error:
        if not hub_reachable():
            raise _hub_error(name, spec) from cached_error
        try:
            return _load_transformers(spec.hub_id, name, spec.family, device, mask)
        except OSError as err:
            raise _hub_error(name, spec) from err


def _hub_error(name: str, spec: ModelSpec) -> BenchError:
    process = get_family(spec.family).process
    tiny = next((alias for alias in BUILT_HERE if get_family(alias).process == process), TINY)
    return BenchError(
        f"model {name!r} ({spec.hub_id}) is not in the local Hugging Face cache and the hub is "
        f"unreachable: download it where the hub is reachable (huggingface-cli download "
        f"{spec.hub_id} --local-dir DIR) and pass --model DIR, or use --model {tiny}"
    )


def _load_transformers(
    source: str,
    name: str,
    family_name: str,
    device: torch.device,
    mask_token_id: int | None,
    local_files_only: bool = False,
) -> DiffusionLM:
    """Tokenizer + model through transformers (remote code allowed), repaired and checked."""
    from transformers import AutoTokenizer

    family = get_family(family_name)
    if family.load is not None:  # DiffusionGemma, causal LMs: their own load and checks
        return family.load(source, name, family, device, _dtype_for(device), local_files_only)
    common = {"trust_remote_code": True, "local_files_only": local_files_only}
    tok = AutoTokenizer.from_pretrained(source, **common)
    if mask_token_id is None and tok.mask_token_id is None:
        mask_token_id = family.default_mask_id
    tokenizer = HFTokenizer(tok, name, mask_token_id, prepend_bos=family.prepend_bos)
    model, repairs = load_remote_model(source, family, _dtype_for(device), **common)
    model = model.to(device).eval()
    info = ModelInfo(
        name=name,
        family=family.name,
        source=source,
        shift_logits=family.shift_logits,
        repairs=repairs,
    )
    dlm = DiffusionLM(model, tokenizer, info)
    check_loaded(dlm, family)
    return dlm
