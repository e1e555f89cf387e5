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

- The causal bases of L2D (their published config.json files): Llama-3.2-1B (hidden 2048, 16
  layers, 32 heads / 8 key-value heads, MLP 8192, vocabulary 128256, tied head: 1.24e9),
  Llama-3.1-8B (4096, 32 layers, 32 / 8, 14336, 128256, untied: 8.03e9), Qwen2.5-1.5B (1536, 28
  layers, 12 / 2, 8960, 151936, tied, q/k/v biases: 1.54e9) and Qwen2.5-7B (Dream-7B's shapes,
  with its q/k/v biases: 7.62e9).

A local folder's shapes are read from its config.json (LLaDA's ``d_model``/``n_layers``/...
keys or the Llama/Qwen ``hidden_size``/``num_hidden_layers``/... keys), or from the nested
``text_config`` of a multimodal config such as DiffusionGemma's. DiffusionGemma's text model is
counted exactly (checked against the tiny test model's parameters): an explicit ``head_dim``,
full-attention layers with ``global_head_dim`` and ``num_global_key_value_heads`` whose keys are
also the values (no ``v_proj``), q/k norms, seven norms per layer, a mixture of experts beside the
dense MLP (``num_experts`` of ``moe_intermediate_size``, ``top_k_experts`` active per token, a
router), the decoder's self-conditioning MLP, and adapters on the encoder's and the decoder's
modules (two per linear). Its vision tower is not counted (never called).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.ground.errors import BenchError
from harness.models.registry import get_family


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
    head_size: int | None = None  # per-head width where it is not hidden // heads (Gemma)
    qkv_bias: bool = False  # Qwen2: biases on q, k and v
    # Gemma-style full-attention layers (DiffusionGemma): their own head width and key-value
    # heads, and the keys serve as values (no v projection).
    global_layers: int = 0
    global_head_size: int | None = None
    global_kv_heads: int | None = None
    # A mixture of experts beside the dense MLP in every layer (DiffusionGemma): ``experts`` of
    # intermediate size ``expert_mlp`` (gate, up, down), ``top_k`` of them used per token.
    experts: int = 0
    top_k: int = 0
    expert_mlp: int = 0
    norms_per_layer: int = 2  # RMSNorm weight vectors of width ``hidden`` per layer
    qk_norm: bool = False  # per-head RMSNorms on q and k (Gemma)
    extra_params: int = 0  # outside the layers (DiffusionGemma's self-conditioning MLP)
    adapter_copies: int = 1  # modules per linear an adapter goes on (DiffusionGemma: 2)

    @property
    def head_dim(self) -> int:
        return self.head_size or self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def layer_kinds(self) -> list[tuple[int, bool]]:
        """(how many layers, full-attention Gemma layer?) for the layer kinds present."""
        kinds = [(self.layers - self.global_layers, False), (self.global_layers, True)]
        return [(n, is_global) for n, is_global in kinds if n > 0]

    def linear_shapes(self, global_layer: bool = False) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of every linear of one layer, by role (a Gemma
        full-attention layer has no "v")."""
        h, m = self.hidden, self.mlp
        head = (self.global_head_size or self.head_dim) if global_layer else self.head_dim
        kv = ((self.global_kv_heads or self.kv_heads) if global_layer else self.kv_heads) * head
        q = self.heads * head
        shapes = {"q": (h, q), "k": (h, kv), "v": (h, kv), "o": (q, h)}
        if global_layer:
            del shapes["v"]
        return {**shapes, "gate": (h, m), "up": (h, m), "down": (m, h)}

    @property
    def default_targets(self) -> tuple[str, ...]:
        """The linear layers adapters go on by default in this family."""
        return get_family(self.family).default_targets

    def target_shapes(
        self, targets: tuple[str, ...], global_layer: bool = False
    ) -> list[tuple[int, int]]:
        """(in, out) of every adapted linear of one layer (what a method counts its parameters
        from; see :func:`target_shapes`)."""
        return target_shapes(self, targets, global_layer)

    def _dense(self, global_layer: bool) -> int:
        return sum(i * o for i, o in self.linear_shapes(global_layer).values())

    def _layer_total(self, global_layer: bool) -> int:
        shapes = self.linear_shapes(global_layer)
        extra = self.norms_per_layer * self.hidden
        if self.qkv_bias:
            extra += sum(shapes[r][1] for r in ("q", "k", "v") if r in shapes)
        if self.qk_norm:
            extra += 2 * (self.global_head_size or self.head_dim if global_layer else self.head_dim)
        if self.experts:  # experts, the router's projection and its two scale vectors
            extra += 3 * self.experts * self.hidden * self.expert_mlp
            extra += self.experts * self.hidden + self.hidden + self.experts
        return self._dense(global_layer) + extra

    @property
    def layer_params(self) -> int:
        """Parameters of one (sliding or plain) layer."""
        return self._layer_total(False)

    @property
    def linear_params(self) -> int:
        """Parameters that take part in a matmul for every token: all layers (the active
        experts and the router included) plus the head."""
        moe = 3 * self.top_k * self.hidden * self.expert_mlp + self.experts * self.hidden
        layers = sum(n * (self._dense(g) + moe) for n, g in self.layer_kinds())
        return layers + self.vocab * self.hidden

    @property
    def total_params(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied_head else 2)
        layers = sum(n * self._layer_total(g) for n, g in self.layer_kinds())
        return layers + embeddings + self.hidden + self.extra_params


# Module short names -> role, per family (see methods/targets.py for the names).
LLADA_8B = Architecture("LLaDA-8B", "llada", 32, 4096, 32, 32, 12288, 126464)
DREAM_7B = Architecture("Dream-7B", "dream", 28, 3584, 28, 4, 18944, 152064, qkv_bias=True)
LLAMA_1B = Architecture("Llama-3.2-1B", "llama", 16, 2048, 32, 8, 8192, 128256, tied_head=True)
LLAMA_8B = Architecture("Llama-3.1-8B", "llama", 32, 4096, 32, 8, 14336, 128256)
QWEN_1_5B = Architecture(
    "Qwen2.5-1.5B", "qwen2", 28, 1536, 12, 2, 8960, 151936, tied_head=True, qkv_bias=True
)
QWEN_7B = Architecture("Qwen2.5-7B", "qwen2", 28, 3584, 28, 4, 18944, 152064, qkv_bias=True)
KNOWN: dict[str, Architecture] = {
    "llada-8b-instruct": LLADA_8B,
    "llada-8b-base": LLADA_8B,
    "llada-1.5": LLADA_8B,  # LLaDA-8B-Instruct trained further (VRPO): the same shapes
    "dream-7b-instruct": DREAM_7B,
    "dream-7b-base": DREAM_7B,
    "llama-3.2-1b-instruct": LLAMA_1B,
    "llama-3.1-8b-instruct": LLAMA_8B,
    "qwen2.5-1.5b-instruct": QWEN_1_5B,
    "qwen2.5-7b-instruct": QWEN_7B,
}


def architecture_for(model: str) -> Architecture:
    """The shapes of ``model``: a local folder's config.json, the config.json of an alias in
    the local Hugging Face cache, else the table of known aliases."""
    folder = Path(model).expanduser()
    if (folder / "config.json").is_file():
        return from_config(folder / "config.json")
    cached = _cached_config(model)
    if cached is not None:
        return from_config(cached)
    if model in KNOWN:
        return KNOWN[model]
    raise BenchError(
        f"no architecture known for model {model!r} here (not downloaded, and not one of "
        f"{', '.join(KNOWN)}): download its config.json (huggingface-cli download HUB_ID "
        "config.json --local-dir DIR) and pass --model DIR to cost it"
    )


def _cached_config(model: str) -> Path | None:
    """An alias's config.json in the local Hugging Face cache (offline), if it is there."""
    from harness.models.loader import MODEL_SPECS

    spec = MODEL_SPECS.get(model)
    if spec is None:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return None
    found = try_to_load_from_cache(spec.hub_id, "config.json")
    return Path(found) if isinstance(found, str) else None


def _first(data: dict, *keys: str):
    for key in keys:
        if data.get(key) is not None:
            return data[key]
    return None


def _family(data: dict, folder: Path) -> str:
    kind = " ".join([str(data.get("model_type", "")), *map(str, data.get("architectures") or [])])
    kind = kind.lower()
    if "diffusion_gemma" in kind or "diffusiongemma" in kind:
        return "diffusion_gemma"
    family = next((f for f in ("llada", "dream") if f in kind), None)
    if family:
        return family
    if "bench_tiny" in kind:
        return "tiny"
    if data.get("model_type") in ("llama", "qwen2"):
        from harness.models.tokenizer import CHAR_TOKENIZER_FILE

        return "tiny-ar" if (folder / CHAR_TOKENIZER_FILE).is_file() else data["model_type"]
    return "generic"


def from_config(path: Path) -> Architecture:
    """Shapes from a config.json in LLaDA's keys or in Llama/Qwen/tiny keys, at the top level or
    under ``text_config`` (DiffusionGemma)."""
    path = Path(path)
    outer = json.loads(path.read_text())
    family = _family(outer, Path(path).parent)
    data = outer.get("text_config") if isinstance(outer.get("text_config"), dict) else outer
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
    tied = _first(data, "weight_tying", "tie_word_embeddings")
    if tied is None:
        tied = outer.get("tie_word_embeddings", False)
    arch = Architecture(
        name=str(path.parent),
        family=family,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=int(kv_heads),
        mlp=mlp,
        vocab=vocab,
        tied_head=bool(tied),
        source=str(path),
        head_size=data.get("head_dim"),
        # Qwen2 and Dream (its released modeling code) build q, k and v with biases
        qkv_bias=family in ("qwen2", "dream") or bool(data.get("attention_bias")),
    )
    if family == "diffusion_gemma":
        return _gemma(arch, data)
    return arch


def _gemma(arch: Architecture, text: dict) -> Architecture:
    """DiffusionGemma's text model on top of the plain shapes (see the module doc)."""
    import dataclasses

    types = text.get("layer_types") or [
        "sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(arch.layers)
    ]
    full = [i for i, t in enumerate(types) if t == "full_attention"]
    if "per_layer_config" in text:  # as transformers saves it: the full layers' overrides
        override = (text["per_layer_config"] or {}).get(str(full[0]) if full else "", {})
        head = override.get("head_dim") or arch.head_dim
        kv = override.get("num_key_value_heads") or arch.kv_heads
    else:  # as the config class takes it (its defaults: head width 512, the plain kv heads)
        head = text.get("global_head_dim") or 512
        kv = text.get("num_global_key_value_heads") or arch.kv_heads
    experts = int(text.get("num_experts") or 0)
    return dataclasses.replace(
        arch,
        global_layers=len(full),
        global_head_size=int(head),
        global_kv_heads=int(kv),
        experts=experts,
        top_k=int(text.get("top_k_experts") or 0) if experts else 0,
        expert_mlp=int(text.get("moe_intermediate_size") or 0) if experts else 0,
        norms_per_layer=7 if experts else 4,
        qk_norm=True,
        extra_params=arch.hidden + 3 * arch.hidden * arch.mlp,  # self-conditioning norm + MLP
        adapter_copies=2,
        tied_head=bool(text.get("tie_word_embeddings", True)),
    )


def target_shapes(
    arch: Architecture, targets: tuple[str, ...], global_layer: bool = False
) -> list[tuple[int, int]]:
    """(in, out) of every adapted linear of one layer, for short module names (a target the
    layer lacks, such as a Gemma full-attention layer's v_proj, is left out)."""
    roles = dict(get_family(arch.family).linear_roles)
    unknown = [t for t in targets if t not in roles]
    if unknown:
        raise BenchError(
            f"cannot cost target module(s) {', '.join(unknown)} on {arch.name}: "
            f"its linear layers are {', '.join(roles)}"
        )
    shapes = arch.linear_shapes(global_layer)
    return [shapes[roles[t]] for t in targets if roles[t] in shapes]


def adapter_params(arch: Architecture, method: str, config) -> int:
    """Parameters of ``method``'s adapter with ``config`` (a MethodConfig) on ``arch``: the
    method counts them (:meth:`methods.base.Method.count_parameters`)."""
    from methods.registry import get_method

    return get_method(method).count_parameters(arch, config)


def adapted_inputs(arch: Architecture, config) -> list[int]:
    """in_features of every adapted linear of one layer (what LoRA saves for backward)."""
    targets = tuple(config.target_modules or arch.default_targets)
    return [i for i, _ in target_shapes(arch, targets)]
