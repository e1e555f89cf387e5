"""What pretraining a tiny base shares across objectives: the cache, the data, the loop, the report.

:mod:`harness.processes.masked.pretrain` (the tiny dLLM, masked-diffusion loss) and :mod:`harness.processes.causal.pretrain`
(the tiny autoregressive base, next-token loss) differ in the model they build, the loss of one
batch and how they decode an answer (a :class:`BaseRecipe`); everything else lives here once, so
both bases are cached, trained on the same data mix, scheduled and reported the same way:

- the cache: one folder per config key under ``BENCH_CACHE``, built once under a file lock and
  renamed into place when complete (:func:`ensure_cached`, :func:`save_atomically`);
- the data: one pool per synthetic family, one family per batch (:func:`family_pools`);
- the config's fields and key (:class:`TinyBaseConfig`);
- the loop: seeds, AdamW, linear warmup then cosine decay, clipping at 1 (:func:`pretrain_base`,
  :func:`run_pretraining`);
- the report: loss curve, parameters, time and the exact-match accuracy of greedy answers
  (:func:`pretraining_report`, :func:`exact_match_accuracy`).

The cache key (:func:`config_key`) hashes the config's fields (all but the after-training
evaluation size) and the base's version; cached bases stay valid as long as neither changes.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import math
import os
import platform
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from harness.ground.errors import BenchError
from harness.ground.progress import progress_bar

log = logging.getLogger(__name__)

TINY_TEMPLATE = "plain"  # the tiny models' prompt format in pretraining, fine-tuning and evaluation
CHANCE = {"synth_math": 0.10, "synth_choice": 0.25, "synth_code": 1 / 6}
REPORT_FILE = "pretrain_report.json"  # written last: a folder with it is a complete base
EXTRA_STREAM = 7_919  # the second generator's seed offset (extra batches)

Pair = tuple[list[int], list[int]]  # (prompt ids, answer ids)


@dataclass(frozen=True)
class TinyBaseConfig:
    """A tiny base's size, data and budget. The defaults are the tiny dLLM's; a base's own config
    subclasses this with its version (and its budget where it differs)."""

    version: ClassVar[int] = 0  # the base's version, hashed into the key

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

    def __post_init__(self) -> None:
        positive = (
            "hidden_size", "num_layers", "num_heads", "intermediate_size", "steps", "batch_size",
            "lr", "examples_per_family",
        )  # fmt: skip
        for name in positive:
            if not getattr(self, name) > 0:
                raise BenchError(
                    f"pretraining {name} must be positive, got {getattr(self, name)!r}"
                )
        if self.hidden_size % self.num_heads:
            raise BenchError(
                f"pretraining hidden_size {self.hidden_size} is not divisible by num_heads "
                f"{self.num_heads}"
            )
        for name in ("warmup_steps", "weight_decay", "eval_examples"):
            if getattr(self, name) < 0:
                raise BenchError(f"pretraining {name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.seed < 2**32:
            raise BenchError(f"pretraining seed must be an integer in [0, 2**32), got {self.seed}")

    def key(self) -> str:
        """Identifies the weights: everything but the size of the after-training evaluation."""
        return config_key(self, self.version)

    def batch_shape(self, step: int) -> tuple[int, int | None]:
        """(rows, response length to pad to; None: the batch's longest row) of one step."""
        return self.batch_size, None

    def extra_batch_shape(self, step: int) -> tuple[int, int] | None:
        """(rows, response length) of a second batch whose loss is added to this step's, drawn
        from a second generator so the first batches stay those of a config without it."""
        return None


@dataclass(frozen=True)
class BaseRecipe:
    """What one kind of tiny base brings to :func:`pretrain_base`.

    build: the wrapped, freshly initialised model (DiffusionLM / CausalLM) for the config.
    batch_loss: the loss of one batch of pairs, drawing any noise from the given generator, with
        the responses padded to the given length (None: to the batch's longest row), under the
        given config.
    accuracy: exact-match accuracy per synthetic family on ``n`` validation examples each.
    """

    name: str  # "tiny dLLM": the progress bar's label
    short: str  # "tiny base": the log's name for it
    build: Callable[[TinyBaseConfig, object], nn.Module]
    batch_loss: Callable[
        [nn.Module, list[Pair], torch.Generator, int | None, TinyBaseConfig], torch.Tensor
    ]
    accuracy: Callable[[nn.Module, int], dict[str, float]]


def pretrain_base(
    recipe: BaseRecipe,
    config: TinyBaseConfig,
    out_dir: Path,
    show_progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Train a fresh tiny base and save it (model, tokenizer, report) into ``out_dir``."""
    from harness.models.tokenizer import CharTokenizer

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    tokenizer = CharTokenizer()
    lm = recipe.build(config, tokenizer)
    model = lm.backbone
    pools = family_pools(tokenizer, config.examples_per_family, config.seed)
    curve, train_time = run_pretraining(
        model,
        config,
        pools,
        lambda pairs, generator, pad_to: recipe.batch_loss(lm, pairs, generator, pad_to, config),
        f"pretraining {recipe.name}",
        show_progress,
        on_step,
    )
    accuracy = recipe.accuracy(lm, config.eval_examples)
    report = pretraining_report(config, model, curve, train_time, accuracy)
    save_atomically(model, tokenizer, report, out_dir)
    log.info("%s: %s", recipe.short, {k: report[k] for k in ("train_time_s", "accuracy")})
    return report


def cache_dir() -> Path:
    """Where built artefacts live; move it with BENCH_CACHE."""
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench")).expanduser()


def config_key(config, version: int, omit: tuple[str, ...] = ()) -> str:
    """Identifies the weights: every field but the size of the after-training evaluation (and
    ``omit``: fields whose value leaves the weights as they were without the field), and the
    base's version (bumped when the corpus, the architecture or the loop changes)."""
    skipped = {"eval_examples", *omit}
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k not in skipped}
    fields["base_version"] = version
    blob = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def ensure_cached(
    folder: Path, build: Callable[[Path], object], what: str, doing: str = "pretraining one (once)"
) -> Path:
    """``folder``, built by ``build(folder)`` first if it holds no complete base yet.

    A file lock makes concurrent processes (one per GPU) wait for a single pretraining run, and
    the folder appears only when complete (built elsewhere, then renamed into place).
    """
    if (folder / REPORT_FILE).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / REPORT_FILE).is_file():
            log.info("no cached %s: %s into %s", what, doing, folder)
            build(folder)
    return folder


def family_pools(tokenizer, examples_per_family: int, seed: int) -> list[list[Pair]]:
    """The encoded pretraining pairs, one pool per synthetic family. One family per batch:
    similar lengths, so little of each row is EOS padding and the few answer tokens keep a
    meaningful share of the loss."""
    from tasks.prompts import format_prompt
    from tasks.synthetic import pretraining_examples

    families: dict[str, list[Pair]] = {}
    for ex in pretraining_examples(examples_per_family, seed):
        pair = (tokenizer.encode(format_prompt(ex, TINY_TEMPLATE)), tokenizer.encode(ex.target))
        families.setdefault(ex.meta["family"], []).append(pair)
    return list(families.values())


def lr_at(step: int, config) -> float:
    """Linear warmup over ``config.warmup_steps``, then cosine decay to zero at ``config.steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def run_pretraining(
    model: nn.Module,
    config,
    pools: list[list[Pair]],
    batch_loss: Callable[[list[Pair], torch.Generator, int | None], torch.Tensor],
    label: str,
    show_progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[list[float], float]:
    """(loss per step, seconds): ``config.steps`` AdamW updates of ``model``, the pools taken in
    turn, each batch drawn with replacement from ``config.seed``'s generator, which
    ``batch_loss(pairs, generator, pad_to)`` may draw from too (the noise levels and masks); the
    rows and response length of each step are ``config.batch_shape(step)``; a step with an
    ``extra_batch_shape`` adds that batch's loss, the families in turn, drawn from a second
    generator."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    extra_generator = torch.Generator().manual_seed(config.seed + EXTRA_STREAM)
    extras = 0
    curve: list[float] = []
    start = time.perf_counter()
    model.train()
    with progress_bar(label, config.steps, enabled=show_progress) as advance:
        for step in range(config.steps):
            pool = pools[step % len(pools)]
            rows, pad_to = config.batch_shape(step)
            idx = torch.randint(len(pool), (rows,), generator=generator).tolist()
            loss = batch_loss([pool[i] for i in idx], generator, pad_to)
            extra = config.extra_batch_shape(step)
            if extra is not None:
                extra_rows, extra_pad = extra
                extra_pool = pools[extras % len(pools)]
                extras += 1
                pick = torch.randint(len(extra_pool), (extra_rows,), generator=extra_generator)
                pairs = [extra_pool[i] for i in pick.tolist()]
                loss = loss + batch_loss(pairs, extra_generator, extra_pad)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, config)
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
    return curve, train_time


def pretraining_report(
    config, model: nn.Module, curve: list[float], train_time: float, accuracy: dict
) -> dict:
    """The record saved beside the weights (``pretrain_report.json``)."""
    return {
        "config": dataclasses.asdict(config),
        "params": sum(p.numel() for p in model.parameters()),
        "train_time_s": round(train_time, 1),
        "loss_first_50": sum(curve[:50]) / min(50, len(curve)),
        "loss_last_50": sum(curve[-50:]) / min(50, len(curve)),
        "loss_curve": curve[:: max(1, len(curve) // 200)],
        "accuracy": accuracy,
        "chance": CHANCE,
        "threads": torch.get_num_threads(),
        "built_with": build_environment(),
    }


def build_environment() -> dict[str, str]:
    """What a base's last bits depend on besides its config: another torch or another CPU's
    kernels round differently, so the same seed builds slightly different weights."""
    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
    }


def exact_match_accuracy(
    tokenizer, n: int, generate: Callable[[list[list[int]]], list[list[int]]]
) -> dict[str, float]:
    """Exact-match accuracy of ``generate``'s answers on each synthetic family's validation
    split (``n`` examples each)."""
    from tasks.prompts import format_prompt
    from tasks.synthetic import SYNTHETIC_TASKS
    from tasks.synthetic_tasks import make_split

    accuracy = {}
    for name in SYNTHETIC_TASKS:
        examples = make_split(name, "validation", n, seed=0)
        prompts = [tokenizer.encode(format_prompt(ex, TINY_TEMPLATE)) for ex in examples]
        outputs = generate(prompts)
        hits = [
            tokenizer.decode(o).strip() == ex.target.strip()
            for o, ex in zip(outputs, examples, strict=True)
        ]
        accuracy[name] = sum(hits) / len(hits)
    return accuracy


def save_atomically(model, tokenizer, report: dict, out_dir: Path) -> None:
    """Model, tokenizer and report into a staging folder, then renamed into ``out_dir``."""
    out_dir = Path(out_dir)
    staging = out_dir.with_name(out_dir.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / REPORT_FILE).write_text(json.dumps(report, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
