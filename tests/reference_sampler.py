"""The plain sampler exactly as it was before harness.processes.masked.sampling (harness/sampler.py at bce6489),
kept verbatim as the reference that the plain path must reproduce token by token."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from harness.ground.errors import BenchError
from harness.models.dlm import DiffusionLM

SCHEDULES: dict[str, Callable[[float], float]] = {
    # Cumulative fraction of a block's tokens unmasked after a fraction tau of its steps.
    "linear": lambda tau: tau,
    "cosine": lambda tau: 1.0 - math.cos(math.pi * tau / 2),
    "cosmap": lambda tau: 1.0 if tau >= 1 else 1.0 - 1.0 / (math.tan(math.pi * tau / 2) + 1.0),
}


@dataclass(frozen=True)
class SamplerConfig:
    gen_length: int = 64
    steps: int = 64
    block_length: int = 64
    temperature: float = 0.0
    remasking: Literal["low_confidence", "random"] = "low_confidence"
    cfg_scale: float = 0.0
    schedule: str = "linear"
    noise_level: Literal["response", "sequence"] = "response"
    stop_at_eos: bool = True

    def __post_init__(self) -> None:
        if self.gen_length <= 0 or self.block_length <= 0:
            raise BenchError("gen_length and block_length must be positive")
        if self.gen_length % self.block_length:
            raise BenchError(
                f"gen_length {self.gen_length} is not divisible by block_length {self.block_length}"
            )
        if self.steps < self.num_blocks:
            raise BenchError(
                f"steps {self.steps} is fewer than the number of blocks {self.num_blocks} "
                f"(gen_length / block_length): every block needs at least one step"
            )
        if self.remasking not in ("low_confidence", "random"):
            raise BenchError(f"remasking {self.remasking!r} is not one of: low_confidence, random")
        if self.schedule not in SCHEDULES:
            raise BenchError(f"schedule {self.schedule!r} is not one of: {', '.join(SCHEDULES)}")
        if self.noise_level not in ("response", "sequence"):
            raise BenchError(f"noise_level {self.noise_level!r} is not one of: response, sequence")
        if self.temperature < 0:
            raise BenchError("temperature must be >= 0")

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_length

    def steps_per_block(self) -> list[int]:
        base, extra = divmod(self.steps, self.num_blocks)
        return [base + (1 if b < extra else 0) for b in range(self.num_blocks)]


def transfer_counts(block_length: int, steps: int, schedule: str = "linear") -> list[int]:
    """How many tokens of a block are committed at each of its steps (they sum to the block)."""
    fn = SCHEDULES[schedule]
    if schedule == "linear":
        base, extra = divmod(block_length, steps)
        return [base + (1 if i < extra else 0) for i in range(steps)]
    done = [round(block_length * fn(i / steps)) for i in range(steps + 1)]
    done[-1] = block_length
    return [done[i + 1] - done[i] for i in range(steps)]


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        if len(p):
            ids[i, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
            attention[i, width - len(p) :] = 1
    return ids, attention


def _candidates(logits: torch.Tensor, temperature: float, generator) -> torch.Tensor:
    if temperature == 0:
        return logits.argmax(dim=-1)
    u = torch.rand(logits.shape, generator=generator, dtype=torch.float64).to(logits.device)
    gumbel = -torch.log(-torch.log(u.clamp_min(1e-20)))
    return (logits.double() / temperature + gumbel).argmax(dim=-1)


@torch.no_grad()
def generate(
    dlm: DiffusionLM,
    prompts: Sequence[Sequence[int]],
    config: SamplerConfig = SamplerConfig(),
    generator: torch.Generator | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """Generate a response for every prompt; each is cut before its first EOS."""
    mask_id, eos_id = dlm.tokenizer.mask_token_id, dlm.tokenizer.eos_token_id
    device = dlm.device
    prompt_ids, prompt_attention = left_pad(prompts, dlm.tokenizer.pad_token_id)
    batch, prompt_len = prompt_ids.shape
    gen = config.gen_length
    x = torch.cat([prompt_ids, torch.full((batch, gen), mask_id, dtype=torch.long)], 1).to(device)
    attention = torch.cat([prompt_attention, torch.ones((batch, gen), dtype=torch.long)], 1)
    attention = attention.to(device)
    seq_len = attention.sum(dim=1).float()
    active = torch.arange(batch, device=device)
    step_index = 0

    for block, block_steps in enumerate(config.steps_per_block()):
        start = prompt_len + block * config.block_length
        end = start + config.block_length
        for count in transfer_counts(config.block_length, block_steps, config.schedule):
            step_index += 1
            if on_step is not None:
                on_step(step_index)
            if count == 0:
                continue
            xa, att = x[active], attention[active]
            is_mask = xa == mask_id
            masked_response = is_mask[:, prompt_len:].sum(dim=1).float()
            if config.noise_level == "response":
                level = masked_response / gen
            else:
                level = masked_response / seq_len[active]
            logits = _denoise(dlm, xa, att, level, prompt_len, config.cfg_scale)
            x0 = _candidates(logits, config.temperature, generator)
            if config.remasking == "low_confidence":
                probs = torch.softmax(logits.float(), dim=-1)
                confidence = probs.gather(-1, x0[..., None]).squeeze(-1)
            else:
                confidence = torch.rand(x0.shape, generator=generator).to(device)
            eligible = is_mask.clone()
            eligible[:, end:] = False
            confidence = confidence.masked_fill(~eligible, -math.inf)
            chosen = confidence.topk(count, dim=1).indices
            commit = torch.zeros_like(eligible).scatter_(1, chosen, True) & eligible
            x[active] = torch.where(commit, x0, xa)
        if config.stop_at_eos:
            done = (x[active, prompt_len:end] == eos_id).any(dim=1)
            if bool(done.any()):
                finished = active[done]
                x[finished, end:] = eos_id
                active = active[~done]
            if active.numel() == 0:
                break

    outputs = []
    for row in x[:, prompt_len:].tolist():
        outputs.append(row[: row.index(eos_id)] if eos_id in row else row)
    return outputs


def _denoise(dlm, x, attention, level, prompt_len: int, cfg_scale: float) -> torch.Tensor:
    if cfg_scale <= 0:
        return dlm(x, level, attention)
    unconditional = x.clone()
    unconditional[:, :prompt_len] = torch.where(
        attention[:, :prompt_len].bool(), dlm.tokenizer.mask_token_id, x[:, :prompt_len]
    )
    both = dlm(torch.cat([x, unconditional]), torch.cat([level, level]), torch.cat([attention] * 2))
    cond, uncond = both.chunk(2)
    return uncond + (cfg_scale + 1) * (cond - uncond)
