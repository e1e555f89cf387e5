"""The model arguments of ``bench-dllm`` (names, types, defaults) and how a given value is read."""

from __future__ import annotations

from typing import Any

from harness.ground.errors import BenchError

MODEL_NAME = "bench-dllm"
DEFAULT_MAX_LENGTH = 4096
DEFAULT_BATCH_SIZE = 16

# Model arguments of :class:`BenchDLLM` besides the model itself (name: type, default).
LM_ARGS: dict[str, tuple[type, Any]] = {
    "mc_num": (int, 128),
    "mc_batch_size": (int, 32),
    "seed": (int, 0),
    "gen_length": (int, 256),
    "steps": (int, 256),
    "block_length": (int, None),  # None: bench's own evaluation's block for the task's suite
    "temperature": (float, 0.0),
    "remasking": (str, "low_confidence"),
    "cfg_scale": (float, 0.0),
    "schedule": (str, "linear"),
    "noise_level": (str, "response"),
    "batch_size": (int, DEFAULT_BATCH_SIZE),
    "max_length": (int, None),
    # fast sampling (harness.processes.masked.sampling): none | prefix | dual;
    # none | threshold:X | factor:X | fastdllm-threshold:X | fastdllm-factor:X;
    # block | step-level-change:X
    "cache": (str, "none"),
    "parallel": (str, "none"),
    "cache_refresh": (str, "block"),
    # LLaDA's generate options, Dream's sampler's (remasking=origin|maskgit_plus|topk_margin|
    # entropy) and how the likelihood's masks are drawn (llada | stratified)
    "logits_eos_inf": (bool, False),
    "confidence_eos_eot_inf": (bool, False),
    "alg_temp": (float, 0.0),
    "eps": (float, 1e-3),
    "mc_masks": (str, "llada"),
    # L2D's flow per token on an autoregressive base (harness.lmeval.causal)
    "l2d_steps": (int, 7),
    "solver": (str, "midpoint"),
}


def _coerce(name: str, value: Any) -> Any:
    kind, default = LM_ARGS[name]
    if value is None or value == "":
        return default
    if name == "batch_size" and isinstance(value, str) and value.startswith("auto"):
        return DEFAULT_BATCH_SIZE
    if kind is bool:
        text = str(value).strip().lower()
        if text not in ("true", "false", "1", "0"):
            raise BenchError(f"model argument {name}={value!r} is not true or false")
        return text in ("true", "1")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise BenchError(
            f"model argument {name}={value!r} is not a valid {kind.__name__}"
        ) from None
