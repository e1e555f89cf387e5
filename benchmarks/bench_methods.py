"""Speed of NaRA and binned LoRA vs LoRA, and of per-example noise vs the release's batch-1 scheme
(run by hand).

    .venv/bin/python benchmarks/bench_methods.py [--repeats 15] [--skip-layer] [--threads 1]
        [--llada-layers 2] [--llada-repeats 3] [--cpu-time]

Same batch and rank side by side in one process; repeats are interleaved (LoRA, NaRA, LoRA, ...)
and medians reported, so background load hits every variant alike.

1. Tiny dLLM (d=256, 4 layers, rank 8 on q/k/v/o, batch 16, length 64):
   train step (forward, loss, backward, AdamW) and sampling forward, NaRA / LoRA (target <= 1.10);
   NaRA with per-example noise at batch 16 vs the reference scheme, 16 forwards of batch 1 with
   gradient accumulation (target >= 2x).
2. One linear layer at LLaDA-8B shapes (4096 x 4096, rank 32, batch 4, length 256): forward +
   backward and forward only, NaRA / LoRA, NaRA's hypernetwork counted once per layer (the worst
   case) and amortised over LLaDA-8B's 128 adapted layers.
3. ``--llada-layers N`` (default 2; 0 skips): a model with N layers of LLaDA-8B's shapes (hidden
   4096, 32 heads, SwiGLU 12288; the tiny architecture, a character vocabulary, fp32 on the CPU),
   rank 32 on q/k/v/o, batch 1 x 128 tokens: train step (forward, loss, backward, AdamW) and
   sampling forward, NaRA / LoRA; the bytes autograd saves for backward per token and layer
   (counted with saved-tensor hooks, weights excluded) next to harness.costs' estimate of them;
   the process's peak resident memory.
4. binned LoRA (K = 4 bins) beside the tiny and the one-layer measurements: its train step and
   sampling forward / LoRA, with per-example levels spread over the bins (the training case) and
   with one level for the whole batch (the sampling case: rows share the masked fraction).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

from harness.models.dlm import DiffusionLM, ModelInfo
from harness.models.tiny import TinyDLLM, TinyDLLMConfig
from harness.models.tokenizer import CharTokenizer
from methods import get_method
from methods.binned_layer import bin_of

warnings.filterwarnings("ignore", category=FutureWarning)


def tiny_model(seed: int = 0) -> DiffusionLM:
    torch.manual_seed(seed)
    config = TinyDLLMConfig(
        hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=768
    )
    return DiffusionLM(TinyDLLM(config), CharTokenizer(), ModelInfo("tiny", "tiny", "bench"))


CLOCK = {"clock": time.perf_counter}  # --cpu-time: process CPU time, steadier under load


def interleaved(fns: dict[str, Callable[[], None]], repeats: int, warmup: int = 2) -> dict:
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            clock = CLOCK["clock"]
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: statistics.median(ts) * 1000 for name, ts in times.items()}


def tiny_benchmarks(repeats: int, batch: int = 16, length: int = 64, rank: int = 8) -> list:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 100, (batch, length), generator=g)
    target = torch.randint(3, 100, (batch, length), generator=g)
    level = torch.rand(batch, generator=g)

    models = {}
    for name in ("lora", "nara", "binned_lora"):
        dlm = tiny_model()
        method = get_method(name)
        adapter = method.apply(dlm, method.config(rank=rank))
        opt = torch.optim.AdamW(adapter.trainable_parameters(), lr=1e-4)
        models[name] = (dlm, adapter, opt)

    def train_step(name: str) -> Callable[[], None]:
        dlm, _, opt = models[name]

        def step() -> None:
            dlm.train()
            logits = dlm(ids, level)
            loss = nn.functional.cross_entropy(logits.transpose(1, 2), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    def reference_step() -> None:  # the release: one level per forward, batch 1, accumulation
        dlm, _, opt = models["nara"]
        dlm.train()
        opt.zero_grad(set_to_none=True)
        for i in range(batch):
            logits = dlm(ids[i : i + 1], level[i : i + 1])
            loss = nn.functional.cross_entropy(logits.transpose(1, 2), target[i : i + 1])
            (loss / batch).backward()
        opt.step()

    def sample_forward(name: str, levels: torch.Tensor = level) -> Callable[[], None]:
        dlm = models[name][0]

        def forward() -> None:
            dlm.eval()
            with torch.no_grad():
                dlm(ids, levels)

        return forward

    train = interleaved(
        {
            "lora": train_step("lora"),
            "nara": train_step("nara"),
            "nara_ref": reference_step,
            "binned": train_step("binned_lora"),
        },
        repeats,
    )
    one_level = torch.full((batch,), 0.5)
    sample = interleaved(
        {
            "lora": sample_forward("lora"),
            "nara": sample_forward("nara"),
            "binned": sample_forward("binned_lora"),
            "binned_one": sample_forward("binned_lora", one_level),
        },
        repeats,
    )
    counts = {name: models[name][1].parameter_counts().trainable for name in models}
    binned_bins = len(set(bin_of(level, 4).tolist()))
    binned_rows = [
        (
            "tiny train step, binned LoRA K=4",
            train["binned"],
            train["binned"] / train["lora"],
            f"{counts['binned_lora']:,}; {binned_bins} bins in the batch",
        ),
        (
            "tiny sampling forward, binned (mixed bins)",
            sample["binned"],
            sample["binned"] / sample["lora"],
            "",
        ),
        (
            "tiny sampling forward, binned (one level)",
            sample["binned_one"],
            sample["binned_one"] / sample["lora"],
            "as in sampling",
        ),
    ]
    rows = [
        ("tiny train step, LoRA", train["lora"], 1.0, f"{counts['lora']:,} params"),
        (
            "tiny train step, NaRA",
            train["nara"],
            train["nara"] / train["lora"],
            f"{counts['nara']:,}",
        ),
        ("tiny sampling forward, LoRA", sample["lora"], 1.0, ""),
        ("tiny sampling forward, NaRA", sample["nara"], sample["nara"] / sample["lora"], ""),
        (
            f"NaRA reference: {batch} x batch 1 + accumulation",
            train["nara_ref"],
            train["nara_ref"] / train["nara"],
            "speed-up of per-example batch",
        ),
    ]
    return rows + binned_rows


class OneLinear(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.q_proj = nn.Linear(d, d, bias=False)

    def forward(self, input_ids=None, **_):  # never called: the layer is timed directly
        raise NotImplementedError


def layer_benchmarks(
    repeats: int, d: int = 4096, rank: int = 32, batch: int = 4, length: int = 256
) -> list:
    torch.manual_seed(0)
    x = torch.randn(batch, length, d)
    level = torch.rand(batch)
    layers, adapters = {}, {}
    for name in ("lora", "nara", "binned_lora"):
        torch.manual_seed(0)
        dlm = DiffusionLM(OneLinear(d), CharTokenizer(), ModelInfo("layer", "generic", "bench"))
        method = get_method(name)
        adapter = method.apply(dlm, method.config(rank=rank, target_modules=("q_proj",)))
        for p in adapter.adapter_parameters():  # as after training: B and the last layer nonzero
            with torch.no_grad():
                p.normal_(0, 0.02)
        layers[name] = dlm.backbone.base_model.model.q_proj
        adapters[name] = adapter
    bank = adapters["nara"].bank
    router = adapters["binned_lora"].router
    one_level = torch.full((batch,), 0.5)

    def train(name: str, levels: torch.Tensor = level) -> Callable[[], None]:
        layer = layers[name]

        def step() -> None:
            layer.train()
            if name == "nara":
                bank.on_level(levels)  # the hypernetwork, once per forward
            if name == "binned_lora":
                router.on_level(levels)  # the rows of each bin, once per forward
            layer(x).sum().backward()

        return step

    def hyper() -> None:
        bank.on_level(level)
        sum(c.sum() for c in bank._current.values()).backward()

    def sample(name: str, levels: torch.Tensor = level) -> Callable[[], None]:
        layer = layers[name]

        def forward() -> None:
            layer.eval()
            with torch.no_grad():
                if name == "nara":
                    bank.on_level(levels)
                if name == "binned_lora":
                    router.on_level(levels)
                layer(x)

        return forward

    t = interleaved(
        {
            "lora": train("lora"),
            "nara": train("nara"),
            "hyper": hyper,
            "binned": train("binned_lora"),
            "binned_one": train("binned_lora", one_level),
        },
        repeats,
        1,
    )
    s = interleaved(
        {
            "lora": sample("lora"),
            "nara": sample("nara"),
            "binned": sample("binned_lora"),
            "binned_one": sample("binned_lora", one_level),
        },
        repeats,
        1,
    )
    amortised = (t["nara"] - t["hyper"] + t["hyper"] / 128) / t["lora"]
    n_bins = len(set(bin_of(level, 4).tolist()))
    binned_rows = [
        ("4096^2 layer fwd+bwd, binned K=4", t["binned"], t["binned"] / t["lora"],
         f"{n_bins} bins in the batch"),
        ("4096^2 layer fwd+bwd, binned (one level)", t["binned_one"],
         t["binned_one"] / t["lora"], ""),
        ("4096^2 layer forward, binned K=4", s["binned"], s["binned"] / s["lora"],
         f"{n_bins} bins in the batch"),
        ("4096^2 layer forward, binned (one level)", s["binned_one"],
         s["binned_one"] / s["lora"], "as in sampling"),
    ]  # fmt: skip
    rows = [
        ("4096^2 layer fwd+bwd, LoRA", t["lora"], 1.0, "rank 32, batch 4 x 256"),
        ("4096^2 layer fwd+bwd, NaRA (+hypernet)", t["nara"], t["nara"] / t["lora"], "worst case"),
        ("  hypernetwork fwd+bwd alone", t["hyper"], t["hyper"] / t["lora"], "673,536 params"),
        ("  NaRA fwd+bwd, hypernet / 128 layers", None, amortised, "LLaDA-8B amortised"),
        ("4096^2 layer forward, LoRA", s["lora"], 1.0, ""),
        ("4096^2 layer forward, NaRA (+hypernet)", s["nara"], s["nara"] / s["lora"], ""),
    ]
    return rows + binned_rows


def saved_bytes(fn: Callable[[], torch.Tensor], params: list[torch.Tensor]) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``fn`` runs (weights
    and other parameters left out)."""
    skip = {p.untyped_storage().data_ptr() for p in params}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def llada_layer_benchmarks(
    repeats: int, n_layers: int, batch: int = 1, length: int = 128, rank: int = 32
) -> list:
    import resource

    from harness.costs.architecture import LLADA_8B
    from harness.costs.estimate import layer_activation_bytes

    g = torch.Generator().manual_seed(0)
    tok = CharTokenizer()
    ids = torch.randint(3, tok.vocab_size, (batch, length), generator=g)
    target = torch.randint(3, tok.vocab_size, (batch, length), generator=g)
    level = torch.rand(batch, generator=g)
    config = TinyDLLMConfig(
        vocab_size=tok.vocab_size,
        hidden_size=LLADA_8B.hidden,
        num_hidden_layers=n_layers,
        num_attention_heads=LLADA_8B.heads,
        intermediate_size=LLADA_8B.mlp,
    )
    models = {}
    for name in ("lora", "nara"):
        torch.manual_seed(0)
        dlm = DiffusionLM(TinyDLLM(config), tok, ModelInfo("llada-shapes", "tiny", "bench"))
        adapter = get_method(name).apply(dlm, get_method(name).config(rank=rank))
        with torch.no_grad():
            for p in adapter.adapter_parameters():  # as after training
                p.normal_(0, 0.02)
        opt = torch.optim.AdamW(adapter.trainable_parameters(), lr=1e-4)
        models[name] = (dlm, adapter, opt)

    def loss_of(name: str) -> torch.Tensor:
        dlm = models[name][0]
        dlm.train()
        logits = dlm(ids, level)
        return nn.functional.cross_entropy(logits.transpose(1, 2), target)

    def train_step(name: str) -> Callable[[], None]:
        def step() -> None:
            opt = models[name][2]
            opt.zero_grad(set_to_none=True)
            loss_of(name).backward()
            opt.step()

        return step

    def sample_forward(name: str) -> Callable[[], None]:
        def forward() -> None:
            dlm = models[name][0]
            dlm.eval()
            with torch.no_grad():
                dlm(ids, level)

        return forward

    train = interleaved({n: train_step(n) for n in models}, repeats, 1)
    sample = interleaved({n: sample_forward(n) for n in models}, repeats, 1)
    tokens = batch * length
    saved = {}
    for name, (dlm, _, _) in models.items():
        params = list(dlm.parameters())
        # includes the final norm and the loss over a ~100-character vocabulary (< 2% here)
        saved[name] = saved_bytes(lambda n=name: loss_of(n), params)
    per_layer = {n: saved[n] / (tokens * n_layers) for n in saved}
    adapted_in = [LLADA_8B.hidden] * 4
    bf16 = layer_activation_bytes(LLADA_8B, adapted_in, 0.05)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    note = f"{n_layers} layers, batch {batch} x {length}"
    return [
        (f"LLaDA-8B shapes train step, LoRA r{rank}", train["lora"], 1.0, note),
        ("LLaDA-8B shapes train step, NaRA", train["nara"], train["nara"] / train["lora"], ""),
        ("LLaDA-8B shapes sampling forward, LoRA", sample["lora"], 1.0, ""),
        ("LLaDA-8B shapes sampling forward, NaRA", sample["nara"], sample["nara"] / sample["lora"], ""),
        ("saved for backward KB/token/layer, LoRA", per_layer["lora"] / 1024, 1.0, "fp32 measured"),
        ("saved for backward KB/token/layer, NaRA", per_layer["nara"] / 1024,
         per_layer["nara"] / per_layer["lora"], ""),
        ("  harness.costs estimate (bf16 autocast)", bf16 / 1024, bf16 / per_layer["lora"],
         "ratio: estimate / fp32 measured"),
        ("process peak RSS GiB", peak_rss, 1.0, "both models + optimizer"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--layer-repeats", type=int, default=7)
    parser.add_argument("--skip-layer", action="store_true")
    parser.add_argument("--llada-layers", type=int, default=2, help="0 skips the LLaDA-8B shapes")
    parser.add_argument("--llada-repeats", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 is steadier on a shared 2-core machine (2 threads spin when busy)",
    )
    parser.add_argument(
        "--cpu-time", action="store_true", help="time with process CPU time, not wall time"
    )
    args = parser.parse_args()
    if args.cpu_time:
        CLOCK["clock"] = time.process_time
    torch.set_num_threads(args.threads)
    clock = "process CPU time" if args.cpu_time else "wall time"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, {clock}")
    rows = tiny_benchmarks(args.repeats)
    if not args.skip_layer:
        rows += layer_benchmarks(args.layer_repeats)
    if args.llada_layers > 0:
        rows += llada_layer_benchmarks(args.llada_repeats, args.llada_layers)
    print(f"{'measurement':48} {'median ms':>10} {'ratio':>7}  note")
    for label, ms, ratio, note in rows:
        ms_text = f"{ms:10.1f}" if ms is not None else f"{'':10}"
        print(f"{label:48} {ms_text} {ratio:7.3f}  {note}")


if __name__ == "__main__":
    main()
