"""Pretraining of the tiny autoregressive base (``--model tiny-ar``), cached like the tiny dLLM.

The same synthetic data mix, tokenizer, sizes and budget style as :mod:`harness.pretrain`, with
next-token loss on the answer instead of the masked-diffusion loss. The architecture is a small
transformers ``LlamaForCausalLM`` (RMSNorm, RoPE, SwiGLU): every causal-LM path of the harness
(LoRA through peft, L2D's hooks into Llama decoder layers, the KV cache) is then the one real
Llama checkpoints take. Fewer updates than the dLLM: a causal LM learns the answers from far fewer
examples (every answer token is a target at every step) and the budget stays under 4 CPU minutes.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.causal.objective import causal_batch, next_token_loss
from harness.models.causal import CausalLM
from harness.models.dlm import ModelInfo
from harness.models.tokenizer import CharTokenizer
from harness.pretrain import CHANCE, TINY_TEMPLATE, _save_atomically, cache_dir
from harness.progress import progress_bar

log = logging.getLogger(__name__)

AR_BASE_VERSION = 1  # bump when the corpus, the architecture or this loop changes


@dataclass(frozen=True)
class CausalPretrainConfig:
    seed: int = 0
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    steps: int = 600
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 40
    weight_decay: float = 0.01
    examples_per_family: int = 8_000
    eval_examples: int = 200

    def key(self) -> str:
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k != "eval_examples"}
        fields["base_version"] = AR_BASE_VERSION
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def tiny_ar_base_dir(config: CausalPretrainConfig = CausalPretrainConfig()) -> Path:
    return cache_dir() / f"tiny-ar-base-{config.key()}"


def ensure_tiny_ar_base(
    config: CausalPretrainConfig = CausalPretrainConfig(), show_progress: bool = True
) -> Path:
    """The cached tiny causal base, pretrained first (once, under a file lock) if missing."""
    folder = tiny_ar_base_dir(config)
    if (folder / "pretrain_report.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "pretrain_report.json").is_file():
            log.info("no cached tiny causal base: pretraining one (once) into %s", folder)
            pretrain_causal(config, folder, show_progress=show_progress)
    return folder


def build_tiny_ar(config: CausalPretrainConfig, tokenizer: CharTokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    model_config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(model_config)


def _lr_at(step: int, config: CausalPretrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def pretrain_causal(config: CausalPretrainConfig, out_dir: Path, show_progress: bool = True):
    """Train a fresh tiny causal LM and save it (model, tokenizer, report) into ``out_dir``."""
    from tasks.prompts import format_prompt
    from tasks.synthetic import pretraining_examples

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    tokenizer = CharTokenizer()
    model = build_tiny_ar(config, tokenizer)
    lm = CausalLM(model, tokenizer, ModelInfo("tiny-ar", "tiny-ar", "pretraining"))
    families: dict[str, list] = {}
    for ex in pretraining_examples(config.examples_per_family, config.seed):
        pair = (tokenizer.encode(format_prompt(ex, TINY_TEMPLATE)), tokenizer.encode(ex.target))
        families.setdefault(ex.meta["family"], []).append(pair)
    pools = list(families.values())
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    curve = []
    start = time.perf_counter()
    model.train()
    with progress_bar("pretraining tiny causal LM", config.steps, enabled=show_progress) as advance:
        for step in range(config.steps):
            pool = pools[step % len(pools)]
            idx = torch.randint(len(pool), (config.batch_size,), generator=generator).tolist()
            ids, scored = causal_batch([pool[i] for i in idx], tokenizer, None)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, config)
            loss, _, _ = next_token_loss(lm(ids), ids, scored, "answer_length")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            curve.append(loss.item())
            advance(loss=curve[-1])
    train_time = time.perf_counter() - start
    model.eval()
    report = {
        "config": dataclasses.asdict(config),
        "params": sum(p.numel() for p in model.parameters()),
        "train_time_s": round(train_time, 1),
        "loss_first_50": sum(curve[:50]) / min(50, len(curve)),
        "loss_last_50": sum(curve[-50:]) / min(50, len(curve)),
        "loss_curve": curve[:: max(1, len(curve) // 200)],
        "accuracy": evaluate_causal_base(lm, config.eval_examples),
        "chance": CHANCE,
        "threads": torch.get_num_threads(),
    }
    _save_atomically(model, tokenizer, report, out_dir)
    log.info("tiny causal base: %s", {k: report[k] for k in ("train_time_s", "accuracy")})
    return report


def evaluate_causal_base(lm: CausalLM, n: int) -> dict[str, float]:
    """Exact-match accuracy of greedy answers on each family's validation split."""
    from harness.causal.decode import greedy_generate
    from tasks.prompts import format_prompt
    from tasks.synthetic import SYNTHETIC_TASKS, make_split

    tok = lm.tokenizer
    accuracy = {}
    for name in SYNTHETIC_TASKS:
        examples = make_split(name, "validation", n, seed=0)
        prompts = [tok.encode(format_prompt(ex, TINY_TEMPLATE)) for ex in examples]
        outputs = greedy_generate(lm, prompts, 16)
        hits = [
            tok.decode(o).strip() == ex.target.strip()
            for o, ex in zip(outputs, examples, strict=True)
        ]
        accuracy[name] = sum(hits) / len(hits)
    return accuracy
