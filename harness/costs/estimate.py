"""What one cell costs on a real model, before anything runs: tokens, FLOPs, GPU-hours on a
device kind, and peak memory with and without gradient checkpointing.

FLOPs (a derivation, not a measurement; N = parameters in a matmul for every token: the layers'
linears plus the output head; the embedding lookup is not a matmul; d = hidden, l = layers, L =
the sequence length):

- Forward: ``2 N`` per token (a multiply and an add per weight), plus attention's scores and
  weighted values, ``4 l L d`` per token.
- Training with a frozen base: the backward pass computes the activation gradients (the same
  matmuls transposed, another ``2 N``) but no gradient for the frozen weights (the third ``2 N``
  of full fine-tuning's ``6 N``), so ``4 N`` per token; attention's backward is twice its
  forward (``12 l L d`` in all). The adapter adds ``6 P_adapter`` per token (it is trained: under
  1% here). Gradient checkpointing runs every layer's forward again: ``+2 N`` (and ``+4 l L d``).
- Validation (``noise_bins`` forwards of the ``val_examples`` every ``val_every`` updates) and
  evaluation are forwards. Generation runs one full forward of prompt + ``gen_length`` tokens per
  sampling step and row (the sampler keeps no cache): ``n x steps x (prompt + gen_length)``
  tokens, an upper bound since rows that end early stop. Likelihood scoring runs ``mc_num``
  forwards of prompt + answer per choice.
- Autoregressive bases (Llama / Qwen2, ``harness/processes/causal/``): generation is greedy with a KV cache,
  so the prompt is read once and every generated token costs one forward of one token:
  ``n x (prompt + gen_length)`` tokens; likelihood scoring is exact, one forward of prompt +
  answer per choice (no Monte Carlo samples). L2D adds, per generated token, its flow
  evaluations (``eval.l2d_steps`` x the solver's stages + the final forward, twice with guidance;
  an adaptive solver is counted as midpoint), each costed as a forward of one token (an upper
  bound: the flow stream skips k and v). L2D's training runs the frozen main path's forward
  (``2 N``) before the flow stream's forward and backward (``4 N``).
- Time = FLOPs / (peak x utilisation) with utilisation (MFU) assumed at :data:`TRAIN_MFU` for
  training and :data:`EVAL_MFU` for evaluation, typical of eager PyTorch at these batch sizes.
  Expect +-50%; the measured time of a finished cell is in its record.

Lengths of real data are not known before loading it, so typical padded lengths per suite
(:data:`TRAIN_TOKENS`, :data:`EVAL_PROMPT_TOKENS`; LLaDA/Qwen tokenizers, alpaca template) are
assumed for time, and ``train.max_length`` for memory. Training-set sizes come from
:data:`TRAIN_SET_SIZES` (the published sizes) unless ``train.train_limit`` or ``train.steps``
bound them.

Memory (bytes; bf16 base weights and autocast on a GPU, fp32 adapters as peft keeps them,
activations per token and layer counted from what autograd saves when the base is frozen, with
SDPA's fused kernels, so no L x L attention matrix):

- weights ``2 x total params`` (``4 x`` on the CPU);
- adapter: parameters, gradients and AdamW's two moments in fp32, ``16 x P_adapter``;
- activations per token and layer: two RMSNorms, each keeping its fp32 upcast input and its
  bf16 normalised output (``12 d``; LLaDA's ``RMSLayerNorm`` and Qwen2's upcast the same way),
  attention's q, k, v and output (``4 d + 4 d_kv``), the SwiGLU gate, up and activation
  (``6 m``), and for each adapted linear its dropped-out input and dropout mask (``3 x in``,
  ``2 x in`` without dropout); with checkpointing only each layer's input (``2 d``) is kept,
  plus one layer recomputed. Checked in fp32 on the CPU with saved-tensor hooks on the tiny
  architecture at LLaDA-8B shapes (benchmarks/bench_methods.py): the same terms counted in fp32
  give 400 KB per token and layer, 345 KB measured;
- the loss: bf16 logits, their fp32 copy, log-softmax and its gradient, ``12 V`` per token;
- evaluation (not at the same time as training): one batch of prompt + gen_length tokens, its
  logits and the sampler's fp32 softmax (``10 V`` per token) plus one layer's transient
  activations;
- :data:`OVERHEAD_BYTES` for the CUDA context, cuBLAS workspaces and allocator fragmentation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.config.cell import CellConfig
from harness.costs.architecture import Architecture, adapted_inputs, adapter_params
from harness.costs.devices import GIB, DeviceKind
from harness.ground.errors import BenchError

TRAIN_MFU = 0.35
EVAL_MFU = 0.30
OVERHEAD_BYTES = 2 * GIB
LOSS_BYTES_PER_VOCAB = 12
SAMPLER_BYTES_PER_VOCAB = 10
CHOICES_PER_QUESTION = 4  # likelihood scoring: about four choices per question

# Typical padded training length per suite (tokens, capped at train.max_length).
TRAIN_TOKENS = {"commonsense": 192, "math": 320, "code": 512}
DEFAULT_TRAIN_TOKENS = 256
# Typical evaluation prompt length per suite (tokens, template included).
EVAL_PROMPT_TOKENS = {"commonsense": 160, "math": 128, "code": 192}
DEFAULT_EVAL_PROMPT_TOKENS = 160
# Training-set sizes (examples) by hub dataset: GSM8K and MBPP exact; the others as published
# (commonsense_170k, MetaMathQA's 155k MATH part, CodeFeedback's 156k rows of all languages).
TRAIN_SET_SIZES = {
    "zwhe99/commonsense_170k": 170_420,
    "openai/gsm8k": 7_473,
    "meta-math/MetaMathQA": 155_000,  # its MATH part (MetaMathQA-MATH), which math500 trains on
    "m-a-p/CodeFeedback-Filtered-Instruction": 156_526,  # all languages: python is a part
    "google-research-datasets/mbpp": 374,
    "math_14k": 14_000,  # LLM-Adapters' ft-training_set/math_14k.json, by its name (about 14k)
}


@dataclass(frozen=True)
class Memory:
    weights: int
    adapter: int  # parameters + gradients + AdamW moments
    activations: int  # saved for backward, at max length, no checkpointing
    activations_checkpointed: int
    loss: int
    evaluation: int  # the largest evaluation forward (transient)
    overhead: int = OVERHEAD_BYTES

    def train_peak(self, checkpointing: bool) -> int:
        acts = self.activations_checkpointed if checkpointing else self.activations
        return self.weights + self.adapter + acts + self.loss + self.overhead

    @property
    def eval_peak(self) -> int:
        return self.weights + self.adapter + self.evaluation + self.overhead

    def peak(self, checkpointing: bool) -> int:
        return max(self.train_peak(checkpointing), self.eval_peak)


@dataclass(frozen=True)
class CellCost:
    device: DeviceKind
    arch: Architecture
    adapter_params: int
    train_examples: int | None  # examples seen (updates x batch x accumulation); None: unknown
    updates: int | None
    train_tokens: int | None
    validation_tokens: int
    eval_tokens: int
    train_flops: float | None  # training and validation
    eval_flops: float
    memory: Memory
    checkpointing: bool

    @property
    def seconds(self) -> float | None:
        if self.train_flops is None:
            return None
        peak = self.device.peak_flops
        return self.train_flops / (peak * TRAIN_MFU) + self.eval_flops / (peak * EVAL_MFU)

    @property
    def gpu_hours(self) -> float | None:
        return None if self.seconds is None else self.seconds / 3600

    @property
    def peak_bytes(self) -> int:
        return self.memory.peak(self.checkpointing)

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= self.device.memory_bytes


def forward_flops(arch: Architecture, tokens: float, length: int) -> float:
    return tokens * (2 * arch.linear_params + 4 * arch.layers * length * arch.hidden)


def training_flops(
    arch: Architecture, tokens: float, adapter: int, length: int, checkpointing: bool
) -> float:
    """FLOPs of forward + backward over ``tokens`` with a frozen base (see the module doc)."""
    matmul = 4 * arch.linear_params + (2 * arch.linear_params if checkpointing else 0)
    attention = (12 + (4 if checkpointing else 0)) * arch.layers * length * arch.hidden
    return tokens * (matmul + attention + 6 * adapter)


def layer_activation_bytes(arch: Architecture, adapted_in: list[int], dropout: float) -> int:
    """Bytes autograd keeps per token for one layer when the base is frozen (module doc)."""
    per_input = 3 if dropout > 0 else 2
    return (
        12 * arch.hidden
        + 4 * arch.hidden
        + 4 * arch.kv_dim
        + 6 * arch.mlp
        + per_input * sum(adapted_in)
    )


def memory_estimate(
    arch: Architecture,
    adapter: int,
    adapted_in: list[int],
    dropout: float,
    train_tokens_per_micro_batch: int,
    eval_tokens_per_forward: int,
    weight_bytes: int = 2,
) -> Memory:
    per_layer = layer_activation_bytes(arch, adapted_in, dropout)
    tokens = train_tokens_per_micro_batch
    transient = 2 * (3 * arch.hidden + 2 * arch.kv_dim + 3 * arch.mlp)  # one layer, no grad
    return Memory(
        weights=weight_bytes * arch.total_params,
        adapter=16 * adapter,
        activations=tokens * arch.layers * per_layer,
        activations_checkpointed=tokens * (arch.layers * 2 * arch.hidden + per_layer),
        loss=tokens * LOSS_BYTES_PER_VOCAB * arch.vocab,
        evaluation=eval_tokens_per_forward * (SAMPLER_BYTES_PER_VOCAB * arch.vocab + transient),
    )


# ------------------------------------------------------------------------------------------
# A cell's numbers
# ------------------------------------------------------------------------------------------
def train_set_size(cell: CellConfig) -> int | None:
    """Examples the cell trains on (validation held out), or None when unknown."""
    from tasks.registry import get_task

    train = cell.train
    if train.data == "suite":  # a suite training set (tasks/training_sets.py), not a task
        from tasks.training_sets import get_training_set

        training_set = get_training_set(cell.task)
        sources, known = training_set.sources, TRAIN_SET_SIZES.get(training_set.name)
    else:
        spec = get_task(cell.task)
        sources, known = spec.train_sources, _split_size(spec, "train")
    for source in sources if known is None else ():
        known = getattr(source, "size", None) or TRAIN_SET_SIZES.get(getattr(source, "path", ""))
        if known:
            break
    n = train.train_limit if train.train_limit is not None else known
    if n is not None and known is not None:
        n = min(n, known)
    return None if n is None else max(1, n - train.val_examples)


def _split_size(spec, split: str) -> int | None:
    """A generated (synthetic) task's split size; None for data loaded from files or the hub."""
    if spec.make_split is None:
        return None
    from tasks.sources import DEFAULT_SYNTH_SIZES

    return {**DEFAULT_SYNTH_SIZES, **spec.meta.get("sizes", {})}[split]


def eval_examples(task: str, limit: int | None) -> int:
    from tasks.registry import get_task

    spec = get_task(task)
    size = spec.test_size or _split_size(spec, "test") or 1000
    return min(size, limit) if limit else size


STAGES = {"euler": 1, "midpoint": 2, "rk4": 4}  # velocity evaluations per integration step


def flow_evals_per_token(cell: CellConfig) -> int:
    """L2D's flow evaluations per generated token at the cell's solver and steps (0 otherwise)."""
    from methods.registry import get_method

    if not get_method(cell.method).flow_decoding:
        return 0
    stages = STAGES.get(cell.eval.solver, 2)  # adaptive: as midpoint (unknown before it runs)
    guided = cell.method_config.get("guidance", 1.0) != 1.0
    return (stages * cell.eval.l2d_steps + 1) * (2 if guided else 1)


def _objective(model: str) -> str:
    from harness.models.loader import base_objective

    try:
        return base_objective(model)
    except BenchError:
        return "masked-diffusion"


def cell_cost(
    cell: CellConfig,
    steps: list[int],
    device: DeviceKind,
    arch: Architecture,
    eval_tasks: list[str] | None = None,
) -> CellCost:
    """The cost of ``cell`` (sampling ``steps``; evaluated on ``eval_tasks``, default the cell's
    evaluated tasks)."""
    from harness.processes.outcome import resolve_protocol
    from methods.registry import get_method
    from tasks.registry import get_task

    train = cell.train
    method = get_method(cell.method)
    config = method.config_cls.from_dict(cell.method_config)
    if method.trains:
        p_adapter = adapter_params(arch, cell.method, config)
        inputs, dropout = adapted_inputs(arch, config), config.dropout
    else:  # the base model: no adapter, no training, one validation pass
        p_adapter, inputs, dropout = 0, [], 0.0
    suite = get_task(cell.evaluated_tasks[0]).suite
    per_update = train.batch_size * train.grad_accum
    n_train = train_set_size(cell)
    if not method.trains:
        updates = 0
    elif train.steps is not None:
        updates = train.steps
    elif n_train is not None:
        updates = max(1, math.ceil(train.epochs * n_train / per_update))
    else:
        updates = None
    train_len = min(train.max_length, TRAIN_TOKENS.get(suite, DEFAULT_TRAIN_TOKENS))
    seen = None if updates is None else updates * per_update
    train_tokens = None if seen is None else seen * train_len
    validations = 0 if updates is None else max(1, math.ceil(updates / train.val_every))
    validation_tokens = validations * train.noise_bins * train.val_examples * train_len

    causal = _objective(cell.model) == "autoregressive"
    flow = flow_evals_per_token(cell)
    eval_tokens, eval_flops, longest = 0, 0.0, 0
    for task in eval_tasks or list(cell.evaluated_tasks):
        spec = get_task(task)
        prompt = EVAL_PROMPT_TOKENS.get(spec.suite, DEFAULT_EVAL_PROMPT_TOKENS)
        n = eval_examples(task, cell.eval.limit)
        cfg = 2 if cell.eval.cfg_scale > 0 else 1
        gen = resolve_protocol(spec, cell.eval) == "gen"
        if causal:  # KV-cached greedy decoding; exact likelihood (module doc)
            length = prompt + (cell.eval.gen_length if gen else 32)
            tokens = n * (
                length + flow * cell.eval.gen_length if gen else CHOICES_PER_QUESTION * length
            )
            longest = max(longest, min(cell.eval.batch_size, n) * length)
        elif gen:
            length = prompt + cell.eval.gen_length
            tokens = cfg * n * sum(steps or [cell.eval.gen_length]) * length
            longest = max(longest, cfg * min(cell.eval.batch_size, n) * length)
        else:
            length = prompt + 32
            tokens = n * CHOICES_PER_QUESTION * cell.eval.mc_num * length
            longest = max(longest, cell.eval.mc_batch_size * length)
        eval_tokens += tokens
        eval_flops += forward_flops(arch, tokens, length)
    memory = memory_estimate(
        arch,
        p_adapter,
        inputs,
        dropout,
        train.batch_size * train.max_length,
        longest,
        device.weight_bytes,
    )
    train_flops = None
    if train_tokens is not None:
        train_flops = training_flops(
            arch, train_tokens, p_adapter, train_len, train.gradient_checkpointing
        ) + forward_flops(arch, validation_tokens, train_len)
        if flow:  # L2D: the frozen main path's forward comes first (module doc)
            train_flops += forward_flops(arch, train_tokens, train_len)
    return CellCost(
        device=device,
        arch=arch,
        adapter_params=p_adapter,
        train_examples=seen,
        updates=updates,
        train_tokens=train_tokens,
        validation_tokens=validation_tokens,
        eval_tokens=eval_tokens,
        train_flops=train_flops,
        eval_flops=eval_flops,
        memory=memory,
        checkpointing=train.gradient_checkpointing,
    )


def gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def fit_problem(cost: CellCost, cell: CellConfig) -> str | None:
    """One line saying why ``cell`` cannot fit ``cost.device``, or None when it fits."""
    if cost.fits:
        return None
    train = cell.train
    m = cost.memory
    line = (
        f"cell {cell.cell_id} needs about {gib(cost.peak_bytes)} on {cost.device.name} "
        f"({gib(cost.device.memory_bytes)}): weights {gib(m.weights)}, activations "
        f"{gib(m.activations_checkpointed if cost.checkpointing else m.activations)} at batch "
        f"{train.batch_size} x max_length {train.max_length}, loss {gib(m.loss)}, evaluation "
        f"{gib(m.evaluation)}"
    )
    if not cost.checkpointing and m.peak(True) <= cost.device.memory_bytes:
        return f"{line}; set train.gradient_checkpointing=true (about {gib(m.peak(True))})"
    return f"{line}; lower train.batch_size, train.max_length or eval.batch_size"
