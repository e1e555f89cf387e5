"""Dream's own sampler (``diffusion_generate`` in Dream's released ``generation_utils.py``), as
bench's ``remasking=origin | maskgit_plus | topk_margin | entropy``.

The whole answer is one span (no blocks). Step ``i`` of ``steps`` runs from time
``t = linspace(1, eps, steps + 1)[i]`` to the next one, ``s``:

- ``origin``: every masked position is decoded with probability ``1 - s / t`` (all of them at the
  last step), independently, and keeps the token drawn (argmax at temperature 0);
- ``maskgit_plus`` / ``topk_margin`` / ``entropy``: every masked position gets a candidate and a
  confidence (its probability; top-1 minus top-2 probability; negative entropy), and the
  ``int(masked * (1 - s / t))`` most confident are committed (all remaining at the last step),
  or, with ``alg_temp > 0``, that many drawn without replacement from
  ``softmax(confidence / alg_temp)``.

Random draws are taken in the reference's order and shapes (one draw over the masked positions,
the categorical samples, the multinomial), so with one seed both give the same tokens on a CPU.
Probabilities are computed in float32 (the reference uses the logits' dtype, bf16 on a GPU).
Dream's ``top_p`` / ``top_k`` are not offered. Before every forward each row's noise level is
set as in :mod:`harness.processes.masked.sampling.loop`.
"""

from __future__ import annotations

import time

import torch

from harness.processes.masked.sampling.config import SamplerConfig


def _sample(logits: torch.Tensor, config: SamplerConfig, generator) -> tuple[torch.Tensor, ...]:
    """(probabilities, candidates): Dream's ``sample_tokens`` without top_p / top_k."""
    logits = logits.float()
    if config.temperature > 0:
        logits = logits / config.temperature
    probs = torch.softmax(logits, dim=-1)
    if config.temperature > 0:
        normalised = probs / probs.sum(-1, keepdim=True)  # what torch's Categorical samples from
        x0 = torch.multinomial(normalised, 1, True, generator=generator).squeeze(-1)
    else:
        x0 = probs.argmax(dim=-1)
    return probs, x0


def _confidence(probs: torch.Tensor, x0: torch.Tensor, alg: str) -> torch.Tensor:
    if alg == "topk_margin":
        top = probs.topk(2, dim=-1).values
        return top[:, 0] - top[:, 1]
    if alg == "entropy":
        return (probs * torch.log(probs + 1e-10)).sum(dim=-1)
    return probs.gather(-1, x0[:, None]).squeeze(-1)  # maskgit_plus


@torch.no_grad()
def generate_dream(
    dlm, prompt_ids, prompt_attention, config: SamplerConfig, generator, on_step, stats
):
    """Dream's loop for a left-padded batch; each answer is cut before its first EOS."""
    began = time.perf_counter()
    mask_id, eos_id, device = dlm.tokenizer.mask_token_id, dlm.tokenizer.eos_token_id, dlm.device
    batch, prompt_len = prompt_ids.shape
    gen = config.gen_length
    x = torch.cat([prompt_ids, torch.full((batch, gen), mask_id, dtype=torch.long)], 1).to(device)
    attention = torch.cat([prompt_attention, torch.ones((batch, gen), dtype=torch.long)], 1)
    attention = attention.to(device)
    seq_len = attention.sum(dim=1).float()
    timesteps = torch.linspace(1, config.eps, config.steps + 1, device=device)
    for i in range(config.steps):
        if on_step is not None:
            on_step(i + 1)
        mask_index = x == mask_id
        masked = mask_index[:, prompt_len:].sum(dim=1).float()
        level = masked / gen if config.noise_level == "response" else masked / seq_len
        logits = dlm(x, level, attention)
        stats.add_forward(batch)
        mask_logits = logits[mask_index]
        t, s = timesteps[i], timesteps[i + 1]
        last = i == config.steps - 1
        before = int(mask_index.sum())
        if config.remasking == "origin":
            p_transfer = 1 if last else 1 - s / t
            x0 = torch.full((mask_logits.shape[0],), mask_id, dtype=torch.long, device=device)
            draw = torch.rand(x0.shape, generator=generator).to(device) < p_transfer
            x0[draw] = _sample(mask_logits[draw], config, generator)[1]
            x[mask_index] = x0
        else:
            probs, x0 = _sample(mask_logits, config, generator)
            confidence = _confidence(probs, x0, config.remasking)
            per_row = mask_index.sum() / mask_index.shape[0]
            count = int(per_row) if last else int(per_row * (1 - s / t))
            if count > 0:
                full = torch.full(x.shape, -torch.inf, device=device, dtype=confidence.dtype)
                full[mask_index] = confidence
                if config.alg_temp > 0:
                    weights = torch.softmax(full / config.alg_temp, dim=-1)
                    chosen = torch.multinomial(weights, count, generator=generator)
                else:
                    chosen = full.topk(count, dim=-1).indices
                proposal = torch.full_like(x, mask_id)
                proposal[mask_index] = x0
                rows = torch.arange(batch, device=device)[:, None].expand_as(chosen)
                x[rows, chosen] = proposal[rows, chosen]
        stats.tokens += before - int((x == mask_id).sum())
    stats.time_s += time.perf_counter() - began
    outputs = []
    for row in x[:, prompt_len:].tolist():
        outputs.append(row[: row.index(eos_id)] if eos_id in row else row)
    return outputs
