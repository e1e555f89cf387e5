"""Pretraining of the embedded tiny dLLM on the synthetic corpus, cached once per config.

The harness must run with no model hub, so it builds its own base: a small bidirectional
transformer trained with the masked-diffusion objective on the synthetic task families, for a
fixed number of steps (deterministic from the seed) that fits in a few CPU minutes. The base is
competent but not saturated, which is what lets fine-tuning methods be told apart on a CPU.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.diffusion import MaskingConfig, build_sft_batch, diffusion_loss, mask_response
from harness.models.dlm import DiffusionLM, ModelInfo
from harness.models.tiny import TinyDLLM, TinyDLLMConfig
from harness.models.tokenizer import CharTokenizer
from harness.progress import progress_bar
from harness.sampler import SamplerConfig, generate

log = logging.getLogger(__name__)

# Bump when the synthetic corpus, the tiny architecture or the pretraining loop changes, so that a
# base cached by an older version of the code is never reused.
BASE_VERSION = 3

CHANCE = {"synth_math": 0.10, "synth_choice": 0.25, "synth_code": 1 / 6}


@dataclass(frozen=True)
class PretrainConfig:
    seed: int = 0
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    steps: int = 800
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 60
    weight_decay: float = 0.01
    examples_per_family: int = 8_000
    eval_examples: int = 200  # per family, sampled after training for the report

    def key(self) -> str:
        """Identifies the weights: everything but the size of the after-training evaluation."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k != "eval_examples"}
        fields["base_version"] = BASE_VERSION
        blob = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """Where built artefacts live; move it with BENCH_CACHE."""
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench")).expanduser()


def tiny_base_dir(config: PretrainConfig = PretrainConfig()) -> Path:
    return cache_dir() / f"tiny-base-{config.key()}"


def ensure_tiny_base(config: PretrainConfig = PretrainConfig(), show_progress: bool = True) -> Path:
    """The cached tiny base for this config, pretraining it first if it does not exist yet.

    A file lock makes concurrent processes (one per GPU) wait for a single pretraining run, and
    the folder appears only when complete (built elsewhere, then renamed into place).
    """
    folder = tiny_base_dir(config)
    if (folder / "pretrain_report.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "pretrain_report.json").is_file():
            log.info("no cached tiny base: pretraining one (once) into %s", folder)
            pretrain(config, folder, show_progress=show_progress)
    return folder


def ensure_base_for_run(model: str) -> None:
    """Before a run starts its workers: the tiny base exists, pretrained (once, cached) in THIS
    process on every core. A worker of ``--devices cpu-cores`` runs one torch thread and would
    pretrain at about half the speed; a folder or a real model needs nothing here."""
    if model != "tiny":
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        ensure_tiny_base()
    finally:
        torch.set_num_threads(threads)


TINY_TEMPLATE = "plain"  # the tiny model's prompt format in pretraining, fine-tuning and evaluation


def _lr_at(step: int, config: PretrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def pretrain(
    config: PretrainConfig,
    out_dir: Path,
    show_progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Train a fresh tiny dLLM and save it (model, tokenizer, report) into ``out_dir``."""
    from tasks.prompts import format_prompt
    from tasks.synthetic import pretraining_examples

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    tokenizer = CharTokenizer()
    model_config = TinyDLLMConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        mask_token_id=tokenizer.mask_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = TinyDLLM(model_config)
    dlm = DiffusionLM(model, tokenizer, ModelInfo("tiny", "tiny", "pretraining"))
    # One family per batch: similar lengths, so little of each row is EOS padding and the few
    # answer tokens keep a meaningful share of the loss.
    families: dict[str, list[tuple[list[int], list[int]]]] = {}
    for ex in pretraining_examples(config.examples_per_family, config.seed):
        pair = (tokenizer.encode(format_prompt(ex, TINY_TEMPLATE)), tokenizer.encode(ex.target))
        families.setdefault(ex.meta["family"], []).append(pair)
    pools = list(families.values())
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    masking = MaskingConfig()
    curve = []
    start = time.perf_counter()
    model.train()
    with progress_bar("pretraining tiny dLLM", config.steps, enabled=show_progress) as advance:
        for step in range(config.steps):
            pool = pools[step % len(pools)]
            idx = torch.randint(len(pool), (config.batch_size,), generator=generator).tolist()
            ids, response = build_sft_batch(
                [pool[i][0] for i in idx], [pool[i][1] for i in idx], tokenizer.eos_token_id
            )
            t = torch.rand(config.batch_size, generator=generator)
            batch = mask_response(ids, response, t, tokenizer.mask_token_id, masking, generator)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, config)
            logits = dlm(batch.input_ids, batch.noise_level)
            loss, _ = diffusion_loss(logits, batch, masking)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            curve.append(loss.item())
            if on_step is not None:
                on_step(step, curve[-1])
            advance(loss=curve[-1])
    train_time = time.perf_counter() - start
    model.eval()
    accuracy = evaluate_base(dlm, config.eval_examples)
    report = {
        "config": dataclasses.asdict(config),
        "params": sum(p.numel() for p in model.parameters()),
        "train_time_s": round(train_time, 1),
        "loss_first_50": sum(curve[:50]) / min(50, len(curve)),
        "loss_last_50": sum(curve[-50:]) / min(50, len(curve)),
        "loss_curve": curve[:: max(1, len(curve) // 200)],
        "accuracy": accuracy,
        "chance": CHANCE,
        "threads": torch.get_num_threads(),
    }
    _save_atomically(model, tokenizer, report, out_dir)
    log.info("tiny base: %s", {k: report[k] for k in ("train_time_s", "accuracy")})
    return report


def evaluate_base(dlm: DiffusionLM, n: int) -> dict[str, float]:
    """Exact-match accuracy of the answer on each family's validation split (greedy sampling)."""
    from tasks.prompts import format_prompt
    from tasks.synthetic import SYNTHETIC_TASKS, make_split

    tok = dlm.tokenizer
    config = SamplerConfig(gen_length=16, steps=16, block_length=4)  # the tiny eval default
    accuracy = {}
    for name in SYNTHETIC_TASKS:
        examples = make_split(name, "validation", n, seed=0)
        prompts = [tok.encode(format_prompt(ex, TINY_TEMPLATE)) for ex in examples]
        outputs = generate(dlm, prompts, config)
        hits = [
            tok.decode(o).strip() == ex.target.strip()
            for o, ex in zip(outputs, examples, strict=False)
        ]
        accuracy[name] = sum(hits) / len(hits)
    return accuracy


def _save_atomically(model, tokenizer, report: dict, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    staging = out_dir.with_name(out_dir.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / "pretrain_report.json").write_text(json.dumps(report, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
