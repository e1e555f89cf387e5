"""The GPU acceptance run: everything a lent GPU should show, in one command, nothing downloaded.

    PYTHONPATH=. python benchmarks/gpu_acceptance.py OUT_DIR [--cpu] [--budget-s 460]
    (or benchmarks/gpu_acceptance.sh [OUT_DIR] [--cpu]: OUT_DIR defaults to $OUT)

Weights are random, built on the device from the released configs' shapes (the released LLaDA and
Dream code from ``../shared/fixtures/dllm-code``, or ``BENCH_DLLM_FIXTURES``; no weight file is
written). Sections, each recorded in ``OUT_DIR/summary.json`` and ``OUT_DIR/summary.md``:

a. the released-code conformance and cache tests (tests/test_sampling_released.py,
   tests/test_bench_vs_fastdllm.py) under ``BENCH_TEST_DEVICE=cuda``: bf16 with SDPA, bf16
   autocast, as bench evaluates on a GPU;
b. LLaDA-8B shapes (32 layers, bf16): LoRA and NaRA rank 32 on the family's default targets
   (q/k/v/attn_out), batch 4 x 512 tokens: seconds per train step (harness.processes.training's
   loop, after one warm-up step) and peak memory, without and with gradient checkpointing,
   beside harness.costs' prediction (FLOPs over the device's peak at the assumed utilisation;
   the memory terms) and the ratio measured / predicted;
c. the sampler on the same LLaDA: tokens/s for plain, prefix and dual cache at gen 256 and 512
   (block 32, one step per two tokens, no EOS stop), batch 1 and 16, and how far the cached
   window's bf16 logits are from the uncached forward (benchmarks/bench_released_cache.py);
d. (b) for Dream-7B shapes (28 layers, q/k/v/o_proj).

``--cpu`` runs the same code on the CPU at reduced shapes (2 layers, hidden 64, batch 2 x 64,
gen 32 and 64, a selection of the tests), so CI proves the run works end to end. Each section
is skipped, with its reason in the summary, once ``--budget-s`` seconds have passed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import torch

from harness.config.cell import TrainConfig
from harness.costs.architecture import adapted_inputs, adapter_params, architecture_for
from harness.costs.devices import cpu_kind, visible_device
from harness.costs.estimate import TRAIN_MFU, memory_estimate, training_flops
from harness.ground.device import autocast_for
from harness.models.dlm import DiffusionLM, ModelInfo
from harness.models.registry import get_family
from harness.processes.masked.sampling import SamplerConfig, SamplingStats, generate
from harness.processes.training import train_adapter
from methods import get_method

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3
SIZES = {
    "gpu": {
        "llada": {"d_model": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 32,
                  "mlp_hidden_size": 12288},
        "dream": {"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28,
                  "num_key_value_heads": 4, "intermediate_size": 18944, "max_window_layers": 28},
        "train": {"batch": 4, "length": 512, "steps": 3},
        "sampler": {"gens": (256, 512), "block": 32, "batches": (1, 16)},
        "tests": ["tests/test_sampling_released.py", "tests/test_bench_vs_fastdllm.py"],
        "select": None,
    },
    "cpu": {
        "llada": {"d_model": 64, "n_layers": 2, "n_heads": 2, "n_kv_heads": 2,
                  "mlp_hidden_size": 128},
        "dream": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                  "num_key_value_heads": 1, "intermediate_size": 128, "max_window_layers": 2},
        "train": {"batch": 2, "length": 64, "steps": 1},
        "sampler": {"gens": (32, 64), "block": 16, "batches": (1, 2)},
        "tests": ["tests/test_sampling_released.py"],
        "select": "frozen_context and llada and lora",
    },
}  # fmt: skip
RANK = 32


def model_folder(tmp: Path, kind: str, shapes: dict, device: torch.device) -> Path:
    """A released-code folder (config.json, code, tokenizer) with ``shapes`` and no weights."""
    from tests.released_models import build_dream, build_llada

    if kind == "llada":
        return build_llada(tmp / kind, weights=False, init_device=str(device), **shapes)
    return build_dream(tmp / kind, weights=False, **shapes)


def random_model(folder: Path, kind: str, device: torch.device, seed: int = 0) -> DiffusionLM:
    """bench's DiffusionLM around the released class built from ``folder``'s config alone:
    weights drawn on ``device`` (normal, std 0.02; norms at 1), bf16 on a GPU and fp32 on the
    CPU as the loader keeps them."""
    from transformers import AutoConfig, AutoTokenizer

    from harness.models.remote import model_class
    from harness.models.tokenizer import HFTokenizer

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    family = get_family(kind)
    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=True)
    cls = model_class(config, str(folder), family, trust_remote_code=True)
    family.prepare_class(cls)
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = cls(config)
    finally:
        torch.set_default_dtype(before)
    family.repair_model(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=generator)
    tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=True)
    mask = tok.mask_token_id if tok.mask_token_id is not None else family.default_mask_id
    tokenizer = HFTokenizer(tok, f"random-{kind}", mask, prepend_bos=family.prepend_bos)
    info = ModelInfo(
        name=f"random-{kind}", family=kind, source=str(folder), shift_logits=family.shift_logits
    )
    return DiffusionLM(model.eval(), tokenizer, info)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_tests(size: dict, device: torch.device, out: Path) -> dict:
    """(a): pytest on the released-code tests on ``device``; counts from its JUnit report."""
    report = out / "tests.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *size["tests"]]
    command += ["--junitxml", str(report)]
    if size["select"]:
        command += ["-k", size["select"]]
    env = os.environ | {"BENCH_TEST_DEVICE": device.type, "PYTHONPATH": str(ROOT)}
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    (out / "tests.log").write_text(done.stdout + done.stderr)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed = []
    if report.is_file():
        for suite in ET.parse(report).getroot().iter("testsuite"):
            for key in counts:
                counts[key] += int(suite.get(key, 0))
            for case in suite.iter("testcase"):
                if case.find("failure") is not None or case.find("error") is not None:
                    failed.append(case.get("name"))
    return {
        "command": " ".join(command[2:]),
        "device": device.type,
        "exit_code": done.returncode,
        **counts,
        "failed": failed,
        "seconds": round(time.perf_counter() - began, 1),
    }


def _train_data(dlm: DiffusionLM, n: int, length: int) -> list[tuple[list[int], list[int]]]:
    g = torch.Generator().manual_seed(0)
    prompt = length // 2 - len(dlm.tokenizer.bos_prefix)
    pairs = []
    for _ in range(n):
        ids = torch.randint(40, 120, (length,), generator=g).tolist()
        pairs.append((list(dlm.tokenizer.bos_prefix) + ids[:prompt], ids[prompt : length - 1]))
    return pairs


def train_figures(tmp: Path, kind: str, size: dict, device: torch.device) -> list[dict]:
    """(b)/(d): per method and checkpointing, seconds per train step and peak memory, measured
    and predicted (one fresh model each, so no adapter or checkpointing state carries over)."""
    train = size["train"]
    rows = []
    gpu = visible_device(str(device)) if device.type == "cuda" else cpu_kind()
    folder = model_folder(tmp, kind, size[kind], device)
    for method in ("lora", "nara"):
        for checkpointing in (False, True):
            dlm = random_model(folder, kind, device)
            m = get_method(method)
            mconfig = m.config(rank=RANK)
            adapter = m.apply(dlm, mconfig)
            data = _train_data(dlm, train["batch"], train["length"])
            config = TrainConfig(
                steps=1,
                batch_size=train["batch"],
                grad_accum=1,
                warmup_ratio=0.0,
                val_examples=0,
                max_length=train["length"],
                gradient_checkpointing=checkpointing,
            )
            train_adapter(dlm, adapter, data, [], config, seed=0)  # warm-up
            result = train_adapter(
                dlm, adapter, data, [], replace(config, steps=train["steps"]), seed=0
            )
            arch = architecture_for(str(folder))
            params = adapter_params(arch, method, mconfig)
            tokens = train["batch"] * train["length"]
            flops = training_flops(arch, tokens, params, train["length"], checkpointing)
            memory = memory_estimate(
                arch,
                params,
                adapted_inputs(arch, mconfig),
                mconfig.dropout,
                tokens,
                0,
                weight_bytes=2 if device.type == "cuda" else 4,
            )
            step_s = result.train_time_s / train["steps"]
            predicted_s = flops / (gpu.peak_flops * TRAIN_MFU)
            predicted_bytes = memory.train_peak(checkpointing)
            rows.append(
                {
                    "family": kind,
                    "method": method,
                    "checkpointing": checkpointing,
                    "adapter_params": params,
                    "step_s": step_s,
                    "predicted_step_s": predicted_s,
                    "time_ratio": step_s / predicted_s,
                    "peak_gib": result.peak_memory_bytes / GIB,
                    "predicted_peak_gib": predicted_bytes / GIB,
                    "memory_ratio": result.peak_memory_bytes / predicted_bytes,
                }
            )
            del dlm, adapter, result
            free(device)
    return rows


def sampler_figures(tmp: Path, size: dict, device: torch.device, deadline: float) -> dict:
    """(c): tokens/s of plain, prefix and dual on random LLaDA, and the cache's agreement;
    settings not started by ``deadline`` (a perf_counter time) are listed as skipped."""
    from bench_released_cache import frozen_check

    dlm = random_model(
        model_folder(tmp / "sampler", "llada", size["llada"], device), "llada", device
    )
    with torch.no_grad():  # random weights give near-zero logits: make them tell apart
        dlm.backbone.get_output_embeddings().weight.mul_(50.0)
    sampler = size["sampler"]
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(40, 120, (max(sampler["batches"]), 31), generator=g).tolist()
    prompts = [list(dlm.tokenizer.bos_prefix) + p for p in prompt]
    agreement = frozen_check(dlm, prompts[:4], max(sampler["gens"]), sampler["block"])
    rows, skipped = [], []
    for gen in sampler["gens"]:
        for batch in sampler["batches"]:
            for cache in ("none", "prefix", "dual"):
                if time.perf_counter() > deadline:
                    skipped.append(f"gen {gen} batch {batch} cache {cache}")
                    continue
                config = SamplerConfig(
                    gen_length=gen,
                    steps=gen // 2,
                    block_length=sampler["block"],
                    cache=cache,
                    stop_at_eos=False,
                )
                stats = SamplingStats()
                with autocast_for(device):
                    generate(dlm, prompts[:batch], replace(config, gen_length=sampler["block"],
                             steps=sampler["block"] // 2))  # fmt: skip
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    began = time.perf_counter()
                    generate(dlm, prompts[:batch], config, stats=stats)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                seconds = time.perf_counter() - began
                rows.append(
                    {
                        "gen": gen,
                        "batch": batch,
                        "cache": cache,
                        "tokens_per_s": batch * gen / seconds,
                        "forwards": stats.forwards,
                        "seconds": seconds,
                    }
                )
    for row in rows:
        plain = next(
            r
            for r in rows
            if (r["gen"], r["batch"], r["cache"]) == (row["gen"], row["batch"], "none")
        )
        row["speedup"] = row["tokens_per_s"] / plain["tokens_per_s"]
    del dlm
    free(device)
    return {"rows": rows, "cache_agreement": agreement, "skipped_over_budget": skipped}


def markdown(summary: dict) -> str:
    """The summary as markdown tables, one section per part."""
    lines = [f"# GPU acceptance ({summary['mode']})", ""]
    lines += [f"- {k}: {v}" for k, v in summary["machine"].items()]
    tests = summary["sections"].get("tests")
    lines += ["", "## (a) released-code conformance and cache tests", ""]
    if isinstance(tests, dict) and "tests" in tests:
        lines.append(
            f"`{tests['command']}` on {tests['device']}: {tests['tests']} tests, "
            f"{tests['failures']} failures, {tests['errors']} errors, {tests['skipped']} skipped "
            f"({tests['seconds']} s)"
        )
        lines += [f"- failed: {name}" for name in tests["failed"]]
    else:
        lines.append(str(tests))
    for key, title in (("llada_train", "(b) LLaDA-8B"), ("dream_train", "(d) Dream-7B")):
        rows = summary["sections"].get(key)
        lines += ["", f"## {title} shapes: train step, rank {RANK}", ""]
        if not isinstance(rows, list):
            lines.append(str(rows))
            continue
        lines.append("| method | checkpointing | step s | predicted s | ratio | peak GiB | "
                     "predicted GiB | ratio |")  # fmt: skip
        lines.append("|---|---|---|---|---|---|---|---|")
        for r in rows:
            lines.append(
                f"| {r['method']} | {r['checkpointing']} | {r['step_s']:.3f} | "
                f"{r['predicted_step_s']:.3f} | {r['time_ratio']:.2f} | {r['peak_gib']:.2f} | "
                f"{r['predicted_peak_gib']:.2f} | {r['memory_ratio']:.2f} |"
            )
    sampler = summary["sections"].get("sampler")
    lines += ["", "## (c) sampler on LLaDA shapes", ""]
    if isinstance(sampler, dict):
        lines += [
            "| gen | batch | cache | tokens/s | x plain | forwards |",
            "|---|---|---|---|---|---|",
        ]
        for r in sampler["rows"]:
            lines.append(
                f"| {r['gen']} | {r['batch']} | {r['cache']} | {r['tokens_per_s']:.1f} | "
                f"{r['speedup']:.2f} | {r['forwards']} |"
            )
        lines += ["", "Cached window vs uncached forward (one frozen state):", ""]
        for a in sampler["cache_agreement"]:
            lines.append(
                f"- {a['window']}: max |diff| {a['max_diff']:.2e} (logits up to "
                f"{a['max_logit']:.1f}), argmax agrees {a['argmax'] * 100:.1f}%"
            )
        lines += [f"- skipped (over the budget): {what}" for what in sampler["skipped_over_budget"]]
    else:
        lines.append(str(sampler))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=os.environ.get("OUT"))
    parser.add_argument("--cpu", action="store_true", help="reduced shapes on the CPU")
    parser.add_argument("--budget-s", type=float, default=460.0)
    parser.add_argument("--skip", default="", help="comma list of: tests,llada,sampler,dream")
    args = parser.parse_args()
    if args.out is None:
        raise SystemExit("gpu_acceptance: give the output folder as an argument or in $OUT")
    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("gpu_acceptance: no CUDA device visible; --cpu runs reduced shapes")
    from tests.released_models import FIXTURES, SKIP_REASON

    if FIXTURES is None:
        raise SystemExit(f"gpu_acceptance: {SKIP_REASON}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mode = "cpu" if args.cpu else "gpu"
    size = SIZES[mode]
    device = torch.device("cpu" if args.cpu else "cuda")
    began = time.perf_counter()
    machine = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
               "torch": torch.__version__, "threads": torch.get_num_threads(),
               "load_before": round(os.getloadavg()[0], 2)}  # fmt: skip
    summary = {"mode": mode, "machine": machine, "sections": {}}
    skip = set(filter(None, args.skip.split(",")))
    parts = {
        "tests": lambda tmp: run_tests(size, device, out),
        "llada_train": lambda tmp: train_figures(tmp, "llada", size, device),
        "dream_train": lambda tmp: train_figures(tmp, "dream", size, device),
        "sampler": lambda tmp: sampler_figures(tmp, size, device, began + args.budget_s),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, part in parts.items():
            elapsed = time.perf_counter() - began
            if name.split("_")[0] in skip:
                summary["sections"][name] = "skipped: --skip"
            elif elapsed > args.budget_s:
                summary["sections"][name] = f"skipped: {elapsed:.0f} s of the budget used"
            else:
                started = time.perf_counter()
                try:
                    summary["sections"][name] = part(Path(tmp))
                except Exception as err:  # one failed part must not lose the others
                    summary["sections"][name] = f"failed: {type(err).__name__}: {err}"
                print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
            (out / "summary.json").write_text(json.dumps(summary, indent=2))
    machine["seconds"] = round(time.perf_counter() - began, 1)
    machine["load_after"] = round(os.getloadavg()[0], 2)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(markdown(summary))
    print(markdown(summary))
    failed = [k for k, v in summary["sections"].items() if isinstance(v, str) and "failed" in v]
    tests = summary["sections"].get("tests")
    if failed or (isinstance(tests, dict) and tests["exit_code"] not in (0, 5)):
        sys.exit(1)


if __name__ == "__main__":
    main()
