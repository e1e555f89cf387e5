"""The autoregressive training objective: next-token cross-entropy on the answer (and its EOS).

The batch is the SFT batch of the diffusion objective ([prompt | answer | EOS padding], right
padded); only the answer tokens and the first EOS are scored, the EOS padding after it is not.
Padding is harmless without an attention mask because no earlier position attends to it.

Every method on an autoregressive base draws the same per-position flow draws ``u`` from the cell's
generator, so L2D and LoRA cells of one seed see the same data order and the same draws; the
adapter maps ``u`` to its flow time (L2D's schedule) or ignores it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from harness.processes.masked.forward import VALIDATION_SEED, noise_bin_edges, sft_batch_of

Encoded = tuple[list[int], list[int]]


def causal_batch(micro: Sequence[Encoded], tok, max_length: int | None):
    """(ids (B, N), scored (B, N) bool: target positions that count in the loss)."""
    ids, response = sft_batch_of(micro, tok, max_length)
    start = response.int().argmax(dim=1)
    answer = torch.tensor([len(a) + 1 for _, a in micro])
    length = torch.minimum(answer, response.sum(dim=1))
    index = torch.arange(ids.shape[1])[None, :]
    scored = (index >= start[:, None]) & (index < (start + length)[:, None]) & (index > 0)
    return ids, scored


def next_token_loss(logits: torch.Tensor, ids: torch.Tensor, scored: torch.Tensor, normalize: str):
    """(scalar loss, per-example mean CE per scored token, scored tokens per example)."""
    ce = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), ids[:, 1:], reduction="none")
    mask = scored[:, 1:].to(ce.dtype)
    per_token_sum, count = (ce * mask).sum(dim=1), mask.sum(dim=1).clamp(min=1)
    per_example = per_token_sum / count
    if normalize == "answer_length":
        return per_example.mean(), per_example, count
    return per_token_sum.sum() / count.sum(), per_example, count


class CausalObjective:
    """Training and validation losses of an autoregressive base (see the module docstring)."""

    name = "autoregressive"

    def micro_loss(self, dlm, adapter, micro, config, generator, autocast):
        config.refuse_eos_tail("causal")
        device = dlm.device
        ids, scored = causal_batch(micro, dlm.tokenizer, config.max_length)
        u = torch.rand(ids.shape, generator=generator)
        t = adapter.flow_time(u)
        with autocast:
            logits = dlm(
                ids.to(device),
                flow_time=None if t is None else t.to(device),
                generator=generator,
            )
        loss, _, _ = next_token_loss(logits, ids.to(device), scored.to(device), config.normalize)
        return loss, ids.numel()

    @torch.no_grad()
    def validation_bins(self, dlm, val_data, config, autocast) -> list[dict]:
        """Cross-entropy per answer token at each bin's mid flow time (t = 0 is the base). A
        model without a flow gives the same value in every bin: computed once."""
        flowing = bool(getattr(dlm.backbone, "flow_conditioned", False))
        edges = noise_bin_edges(config.noise_bins)
        rows, first = [], None
        for lo, hi in edges:
            if not flowing and first is not None:
                rows.append({**first, "bin_lo": lo, "bin_hi": hi})
                continue
            generator = torch.Generator().manual_seed(VALIDATION_SEED)
            ce_sum, tokens, per_example_sum, count = 0.0, 0, 0.0, 0
            for start in range(0, len(val_data), config.batch_size):
                chunk = val_data[start : start + config.batch_size]
                ids, scored = causal_batch(chunk, dlm.tokenizer, config.max_length)
                t = torch.full(ids.shape, (lo + hi) / 2) if flowing else None
                device = dlm.device
                with autocast:
                    logits = dlm(
                        ids.to(device),
                        flow_time=None if t is None else t.to(device),
                        generator=generator,
                    )
                _, per_example, n = next_token_loss(
                    logits, ids.to(device), scored.to(device), config.normalize
                )
                ce_sum += float((per_example * n).sum())
                tokens += int(n.sum())
                per_example_sum += float(per_example.sum())
                count += len(chunk)
            row = {
                "bin_lo": lo,
                "bin_hi": hi,
                "weighted_loss": per_example_sum / count,
                "ce_per_token": ce_sum / tokens if tokens else None,
                "n_tokens": tokens,
            }
            first = first or row
            rows.append(row)
        return rows
