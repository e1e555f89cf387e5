"""The shapes a cost estimate needs: layers, widths, heads, MLP and vocabulary of a model, and
the parameter count of a method's adapter on it.

For an alias that is not downloaded the shapes come from :data:`KNOWN`, the published configs
(checked against the hub config.json files):

- LLaDA-8B (Base and Instruct, ``GSAI-ML/LLaDA-8B-*``): ``d_model`` 4096, ``n_layers`` 32,
  ``n_heads`` = ``n_kv_heads`` 32, ``mlp_hidden_size`` 12288 (SwiGLU), vocabulary 126464,
  untied output head: 8.02e9 parameters.
- Dream-7B (``Dream-org/Dream-v0-*-7B``, initialised from Qwen2.5-7B): ``hidden_size`` 3584,
  28 layers, 28 heads / 4 key-value heads (head dim 128), ``intermediate_size`` 18944 (SwiGLU),
  vocabulary 152064, untied head, q/k/v biases: 7.62e9 parameters.

A local folder's shapes are read from its config.json (LLaDA's ``d_model``/``n_layers``/...
keys or the Llama/Qwen ``hidden_size``/``num_hidden_layers``/... keys).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.errors import BenchError


@dataclass(frozen=True)
class Architecture:
    """A decoder-style transformer with a gated (SwiGLU) MLP, as LLaDA, Dream and tiny are."""

    name: str
    family: str  # llada | dream | tiny | generic (selects the module names)
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    mlp: int  # intermediate size: gate and up are hidden x mlp, down is mlp x hidden
    vocab: int
    tied_head: bool = False
    source: str = "table"  # "table" or the config.json it was read from

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of every linear of one layer, by role."""
        h, kv, m = self.hidden, self.kv_dim, self.mlp
        return {
            "q": (h, h),
            "k": (h, kv),
            "v": (h, kv),
            "o": (h, h),
            "gate": (h, m),
            "up": (h, m),
            "down": (m, h),
        }

    @property
    def layer_params(self) -> int:
        return sum(i * o for i, o in self.linear_shapes().values()) + 2 * self.hidden

    @property
    def linear_params(self) -> int:
        """Parameters that take part in a matmul for every token: all layers plus the head."""
        return self.layers * sum(i * o for i, o in self.linear_shapes().values()) + (
            self.vocab * self.hidden
        )

    @property
    def total_params(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied_head else 2)
        return self.layers * self.layer_params + embeddings + self.hidden


# Module short names -> role, per family (see methods/targets.py for the names).
ROLES: dict[str, dict[str, str]] = {
    "llada": {
        "q_proj": "q",
        "k_proj": "k",
        "v_proj": "v",
        "attn_out": "o",
        "ff_proj": "gate",
        "up_proj": "up",
        "ff_out": "down",
    },
    "dream": {
        "q_proj": "q",
        "k_proj": "k",
        "v_proj": "v",
        "o_proj": "o",
        "gate_proj": "gate",
        "up_proj": "up",
        "down_proj": "down",
    },
}
ROLES["tiny"] = ROLES["generic"] = ROLES["dream"]

LLADA_8B = Architecture("LLaDA-8B", "llada", 32, 4096, 32, 32, 12288, 126464)
DREAM_7B = Architecture("Dream-7B", "dream", 28, 3584, 28, 4, 18944, 152064)
KNOWN: dict[str, Architecture] = {
    "llada-8b-instruct": LLADA_8B,
    "llada-8b-base": LLADA_8B,
    "dream-7b-instruct": DREAM_7B,
    "dream-7b-base": DREAM_7B,
}


def architecture_for(model: str) -> Architecture:
    """The shapes of ``model``: a local folder's config.json, else the table of known aliases."""
    folder = Path(model).expanduser()
    if (folder / "config.json").is_file():
        return from_config(folder / "config.json")
    if model in KNOWN:
        return KNOWN[model]
    raise BenchError(
        f"no architecture known for model {model!r}: give a model folder with a config.json, "
        f"or one of {', '.join(KNOWN)}"
    )


def _first(data: dict, *keys: str):
    for key in keys:
        if data.get(key) is not None:
            return data[key]
    return None


def from_config(path: Path) -> Architecture:
    """Shapes from a config.json in LLaDA's keys or in Llama/Qwen/tiny keys."""
    data = json.loads(Path(path).read_text())
    kind = " ".join([str(data.get("model_type", "")), *map(str, data.get("architectures") or [])])
    kind = kind.lower()
    family = next((f for f in ("llada", "dream") if f in kind), None)
    family = family or ("tiny" if "bench_tiny" in kind else "generic")
    hidden = _first(data, "d_model", "hidden_size")
    layers = _first(data, "n_layers", "num_hidden_layers")
    heads = _first(data, "n_heads", "num_attention_heads")
    kv_heads = _first(data, "n_kv_heads", "num_key_value_heads") or heads
    mlp = _first(data, "mlp_hidden_size", "intermediate_size")
    if mlp is None and hidden is not None and data.get("mlp_ratio"):
        mlp = int(data["mlp_ratio"] * hidden)
    vocab = _first(data, "embedding_size", "vocab_size")
    values = {"hidden": hidden, "layers": layers, "heads": heads, "mlp": mlp, "vocab": vocab}
    missing = [k for k, v in values.items() if not isinstance(v, int) or v <= 0]
    if missing:
        raise BenchError(f"{path} does not give the model's {', '.join(missing)}: cannot cost it")
    tied = bool(_first(data, "weight_tying", "tie_word_embeddings"))
    return Architecture(
        name=str(path.parent),
        family=family,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=int(kv_heads),
        mlp=mlp,
        vocab=vocab,
        tied_head=tied,
        source=str(path),
    )


def target_shapes(arch: Architecture, targets: tuple[str, ...]) -> list[tuple[int, int]]:
    """(in, out) of every adapted linear of one layer, for short module names."""
    roles = ROLES[arch.family]
    unknown = [t for t in targets if t not in roles]
    if unknown:
        raise BenchError(
            f"cannot cost target module(s) {', '.join(unknown)} on {arch.name}: "
            f"its linear layers are {', '.join(roles)}"
        )
    shapes = arch.linear_shapes()
    return [shapes[roles[t]] for t in targets]


def adapter_params(arch: Architecture, method: str, config) -> int:
    """Parameters of ``method``'s adapter with ``config`` (a MethodConfig) on ``arch``."""
    from methods.core_method import group_of
    from methods.targets import default_targets

    targets = tuple(config.target_modules or default_targets(arch.family))
    shapes = target_shapes(arch, targets)
    r = config.rank
    per_layer = sum(r * (i + o) for i, o in shapes)
    if method == "dora":
        per_layer += sum(o for _, o in shapes)
    total = arch.layers * per_layer
    if method in ("static_core", "nara"):
        layer_names = [f"layers.{n}.{t}" for n in range(arch.layers) for t in targets]
        groups = len({group_of(name, config.core_sharing) for name in layer_names})
        if method == "static_core":
            total += groups * r * r
        else:
            from methods.nara import hypernetwork_parameter_count

            total += groups * hypernetwork_parameter_count(config)
    if method == "binned_lora":  # one LoRA per noise bin
        total *= config.bins
    return total


def adapted_inputs(arch: Architecture, config) -> list[int]:
    """in_features of every adapted linear of one layer (what LoRA saves for backward)."""
    from methods.targets import default_targets

    targets = tuple(config.target_modules or default_targets(arch.family))
    return [i for i, _ in target_shapes(arch, targets)]
