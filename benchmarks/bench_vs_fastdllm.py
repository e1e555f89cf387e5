"""bench's sampler beside Fast-dLLM's reference functions, on one random-weight LLaDA.

Run by hand (needs ``../shared``: the released LLaDA code and Fast-dLLM's files; Fast-dLLM's
modeling file imports ``einops``):

    PYTHONPATH=. .venv/bin/python benchmarks/bench_vs_fastdllm.py [--hidden 512] [--layers 8]
        [--gen-length 64] [--block 32] [--steps 16] [--threshold 0.9] [--batches 1,8]
        [--repeats 3] [--threads 1] [--settings prefix,dual,threshold,dual+threshold]
        [--bench-threshold-steps N] [--bench-rule NAME] [--no-compile] [--json PATH]

One model folder is built from the released LLaDA code (random weights, the output head scaled
so that confidences spread out instead of tying). bench loads it with the released modeling file,
as it loads LLaDA-8B; Fast-dLLM's functions get the same weights through Fast-dLLM's modified
modeling file (``past_key_values``, ``replace_position``), imported from ``../shared`` at run time.
Both decode the same prompts with the same settings, greedily, without stopping at EOS, so both
decode ``batch x gen_length`` tokens per call; calls are interleaved, the median of the repeats is
reported as tokens/s, with bench / Fast-dLLM and the share of identical response tokens.

Which semantics are compared:

- ``prefix``, ``dual``: Fast-dLLM's ``generate_with_prefix_cache`` / ``generate_with_dual_cache``
  and bench's ``cache=prefix|dual``, both with ``steps`` (``--steps``) split over the blocks; both
  record the cache at each block's first step. The same rule, so tokens should be identical.
- ``threshold``, ``dual+threshold``: Fast-dLLM's ``generate`` / ``generate_with_dual_cache`` with
  ``threshold`` commit the most confident token and every other one at or above the threshold,
  looping until the block is full (its ``steps`` is not used). bench's ``parallel=threshold:X``
  commits every token strictly above X and at least the step schedule's count; with one step per
  token (``--bench-threshold-steps`` = gen length, the default) that count is one, which is
  Fast-dLLM's rule. With fewer steps bench commits more per step and the tokens differ.
  ``--bench-rule NAME`` gives bench's rule another name (``parallel=NAME:X``), e.g. a rule that
  ignores the steps as Fast-dLLM's does, to be run with Fast-dLLM's published steps.
- Fast-dLLM's functions take one prompt (they build the sequence with batch 1), so at batch > 1
  it decodes the prompts one after another, as its users do; bench decodes them as one batch.
  Its model passes no attention mask, so every prompt has the same length (no padding).
- Fast-dLLM computes confidences in float64, bench too with a cache (in float32 for
  ``threshold`` without one): a confidence within float32's rounding of the threshold can fall on
  either side. Both run float32 forwards, and bench's dual window adds its attention keys in
  another order (cached prefix, cached suffix, window), so its logits differ by rounding
  and a near-tie among a step's confidences can be broken the other way (docs/measurements.md).

Fast-dLLM's modeling file wraps its attention in ``torch.compile``; the first call of each setting
is preceded by an untimed warm-up on the first prompt (``--no-compile`` runs it eagerly).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from harness.ground.errors import BenchError
from harness.models.llada import LLADA
from harness.models.loader import load_model
from harness.processes.masked.sampling import SamplerConfig, SamplingStats, generate

REFERENCE = Path(__file__).resolve().parents[2] / "shared/fixtures/reference-code/samplers"
REFERENCE = Path(os.environ.get("BENCH_SAMPLER_REFERENCES", REFERENCE)) / "fast-dllm-llada"
# setting -> (Fast-dLLM function, uses the threshold, bench cache mode)
SETTINGS = {
    "prefix": ("generate_with_prefix_cache", False, "prefix"),
    "dual": ("generate_with_dual_cache", False, "dual"),
    "threshold": ("generate", True, "none"),
    "dual+threshold": ("generate_with_dual_cache", True, "dual"),
}
PROMPT_LENGTH = 16


@dataclass
class Row:
    setting: str
    batch: int
    bench_tokens_per_s: float
    fastdllm_tokens_per_s: float
    ratio: float  # bench / Fast-dLLM tokens per second
    identical: float  # share of response positions where both wrote the same token
    bench_forwards: int
    fastdllm_forwards: int
    bench_config: str


def reference_available() -> str | None:
    """None when Fast-dLLM's files and einops are here, else why not (one line)."""
    if not (REFERENCE / "generate.py").is_file():
        return f"Fast-dLLM's reference files are not here ({REFERENCE})"
    if importlib.util.find_spec("einops") is None:
        return "Fast-dLLM's modeling file imports einops, which is not installed"
    return None


def load_reference():
    """Fast-dLLM's ``generate`` module and its model class, imported from ``../shared``.

    Its ``generate.py`` imports ``model.modeling_llada``: the package is registered as ``model``
    only while that import runs. Its files register their classes for model type ``llada`` with
    transformers' Auto classes, which would then build Fast-dLLM's classes for every LLaDA folder
    loaded later in the process: those registries are put back as they were."""
    from transformers import AutoModel
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    problem = reference_available()
    if problem is not None:
        raise BenchError(problem)
    registries = [CONFIG_MAPPING._extra_content, AutoModel._model_mapping._extra_content]
    saved_registries = [dict(r) for r in registries]
    saved = sys.modules.get("model")
    spec = importlib.util.spec_from_file_location(
        "model",
        REFERENCE / "model" / "__init__.py",
        submodule_search_locations=[str(REFERENCE / "model")],
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["model"] = package
    try:
        spec.loader.exec_module(package)
        gspec = importlib.util.spec_from_file_location(
            "fastdllm_generate", REFERENCE / "generate.py"
        )
        module = importlib.util.module_from_spec(gspec)
        gspec.loader.exec_module(module)
    finally:
        for registry, before in zip(registries, saved_registries, strict=True):
            registry.clear()
            registry.update(before)
        for name in [n for n in sys.modules if n == "model" or n.startswith("model.")]:
            del sys.modules[name]
        if saved is not None:
            sys.modules["model"] = saved
    return module, package.LLaDAModelLM


# Weight scales over build_llada's std 0.02: sharper attention (q, k) with a larger share in the
# residual stream (v, out) makes every masked position see its own context, and the larger output
# head spreads the confidences (hidden 512, 8 layers: 10-90% quantiles about 0.5-0.98, 40% of
# masked positions above 0.9, a different argmax at nearly every position).
SCALES = {
    "q_proj": 10.0,
    "k_proj": 10.0,
    "v_proj": 5.0,
    "attn_out": 5.0,
    "transformer.ff_out": 1600.0,
}


def build_folder(tmp: Path, hidden: int, layers: int, seed: int = 0, scales=None) -> Path:
    """A random-weight LLaDA folder from the released code (tests/released_models.py), its
    weights rescaled by ``scales`` (name fragment -> factor; default ``SCALES``) in the file, so
    both models load the very same tensors."""
    from safetensors.torch import load_file, save_file

    from tests.released_models import build_llada

    heads = max(1, hidden // 64)
    folder = build_llada(
        tmp,
        seed=seed,
        d_model=hidden,
        n_layers=layers,
        n_heads=heads,
        n_kv_heads=heads,
        mlp_hidden_size=3 * hidden,
    )
    scales = SCALES if scales is None else scales
    weights = load_file(str(folder / "model.safetensors"))
    for name in weights:
        for fragment, factor in scales.items():
            if f"{fragment}.weight" in name and (
                fragment != "transformer.ff_out" or "blocks" not in name
            ):
                weights[name] = weights[name] * factor
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def load_pair(folder: Path, device: str = "cpu"):
    """bench's model (the released modeling file) and Fast-dLLM's (its own), same weights."""
    module, cls = load_reference()
    LLADA.prepare_class(cls)  # the transformers-5 repairs bench applies to the released class
    dlm = load_model(str(folder), device).eval()
    dtype = next(dlm.parameters()).dtype  # bf16 on a GPU, as bench's loader keeps it
    reference = cls.from_pretrained(str(folder), dtype=dtype).to(device).eval()
    LLADA.repair_model(reference)
    return dlm, reference, module


def make_prompts(batch: int, bos: int, seed: int = 0) -> list[list[int]]:
    """Equal-length prompts (BOS, then byte tokens): Fast-dLLM's model takes no padding mask."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(40, 120, (batch, PROMPT_LENGTH - 1), generator=g)
    return [[bos, *row] for row in ids.tolist()]


def cut(tokens: list[int], eos: int, length: int) -> list[int]:
    """A response up to its first EOS, then EOS to ``length`` (how bench returns it, padded)."""
    head = tokens[: tokens.index(eos)] if eos in tokens else tokens
    return head + [eos] * (length - len(head))


def bench_config(
    setting: str,
    gen: int,
    block: int,
    steps: int,
    threshold: float,
    tsteps: int,
    rule: str = "threshold",
):
    _, thresholded, cache = SETTINGS[setting]
    return SamplerConfig(
        gen_length=gen,
        steps=tsteps if thresholded else steps,
        block_length=block,
        cache=cache,
        parallel=f"{rule}:{threshold}" if thresholded else "none",
        stop_at_eos=False,
    )


def run_reference(module, model, setting, prompts, gen, block, steps, threshold):
    """Fast-dLLM on every prompt in turn: (responses, forwards)."""
    name, thresholded, _ = SETTINGS[setting]
    fn = getattr(module, name)
    out, forwards = [], 0
    for prompt in prompts:
        x, nfe = fn(
            model,
            torch.tensor([prompt], device=model.device),
            steps=steps,
            gen_length=gen,
            block_length=block,
            temperature=0.0,
            remasking="low_confidence",
            threshold=threshold if thresholded else None,
        )
        out.append(x[0, len(prompt) :].tolist())
        forwards += nfe
    return out, forwards


def compare(
    dlm,
    reference,
    module,
    settings: list[str],
    batches: list[int],
    gen: int = 64,
    block: int = 32,
    steps: int = 16,
    threshold: float = 0.9,
    threshold_steps: int | None = None,
    rule: str = "threshold",
    repeats: int = 1,
    compile_reference: bool = True,
    warmup: bool = True,
    log=print,
) -> list[Row]:
    """Time and compare both samplers per setting and batch (the core the test runs)."""
    tsteps = threshold_steps or gen
    eos = dlm.tokenizer.eos_token_id
    bos = dlm.tokenizer.bos_prefix[0]
    eager = (
        contextlib.nullcontext() if compile_reference else torch._dynamo.config.patch(disable=True)
    )
    rows = []
    with eager:
        for batch in batches:
            prompts = make_prompts(batch, bos)
            for setting in settings:
                config = bench_config(setting, gen, block, steps, threshold, tsteps, rule)
                times: dict[str, list[float]] = {"bench": [], "ref": []}
                if warmup:  # untimed, on the first prompt: compiles Fast-dLLM's attention
                    generate(dlm, prompts[:1], config)
                    run_reference(
                        module, reference, setting, prompts[:1], gen, block, steps, threshold
                    )
                for _ in range(repeats):
                    stats = SamplingStats()
                    began = time.perf_counter()
                    mine = generate(dlm, prompts, config, stats=stats)
                    mid = time.perf_counter()
                    theirs, nfe = run_reference(
                        module, reference, setting, prompts, gen, block, steps, threshold
                    )
                    done = time.perf_counter()
                    times["bench"].append(mid - began)
                    times["ref"].append(done - mid)
                same = sum(
                    a == b
                    for m, t in zip(mine, theirs, strict=True)
                    for a, b in zip(cut(m, eos, gen), cut(t, eos, gen), strict=True)
                )
                tokens = batch * gen
                bench_t = statistics.median(times["bench"])
                ref_t = statistics.median(times["ref"])
                row = Row(
                    setting=setting,
                    batch=batch,
                    bench_tokens_per_s=tokens / bench_t,
                    fastdllm_tokens_per_s=tokens / ref_t,
                    ratio=ref_t / bench_t,
                    identical=same / tokens,
                    bench_forwards=stats.forwards,
                    fastdllm_forwards=nfe,
                    bench_config=f"steps={config.steps} {config.label}",
                )
                log(
                    f"{setting:15s} batch {batch:2d}  bench {row.bench_tokens_per_s:7.1f} tok/s "
                    f"({row.bench_forwards} forwards)  Fast-dLLM {row.fastdllm_tokens_per_s:7.1f} "
                    f"tok/s ({nfe} forwards)  x{row.ratio:4.2f}  identical "
                    f"{row.identical * 100:5.1f}%  [bench {row.bench_config}]"
                )
                rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--gen-length", type=int, default=64)
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--bench-threshold-steps", type=int, default=None)
    parser.add_argument("--bench-rule", default="threshold")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    settings = args.settings.split(",")
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise SystemExit(f"unknown settings {unknown}; choose from {', '.join(SETTINGS)}")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_folder(Path(tmp), args.hidden, args.layers)
        dlm, reference, module = load_pair(folder, args.device)
    load_before = os.getloadavg()[0]
    print(
        f"LLaDA hidden {args.hidden}, {args.layers} layers; gen "
        f"{args.gen_length}, block {args.block}, steps {args.steps}, threshold {args.threshold}; "
        f"{args.threads} threads on {args.device}; load average {load_before:.2f}",
        flush=True,
    )
    rows = compare(
        dlm,
        reference,
        module,
        settings,
        [int(b) for b in args.batches.split(",")],
        gen=args.gen_length,
        block=args.block,
        steps=args.steps,
        threshold=args.threshold,
        threshold_steps=args.bench_threshold_steps,
        rule=args.bench_rule,
        repeats=args.repeats,
        compile_reference=not args.no_compile,
        log=lambda line: print(line, flush=True),
    )
    load_after = os.getloadavg()[0]
    print(f"load average after {load_after:.2f}")
    if args.json is not None:
        summary = {"args": vars(args) | {"json": str(args.json)}, "load": [load_before, load_after]}
        args.json.write_text(json.dumps(summary | {"rows": [asdict(r) for r in rows]}, indent=2))


if __name__ == "__main__":
    main()
