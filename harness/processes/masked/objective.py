"""The masked-diffusion training objective (LLaDA's SFT loss) and its validation loss per noise
bin, for the one training loop in :mod:`harness.processes.training`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from harness.config.cell import TrainConfig
from harness.ground.device import autocast_for
from harness.models.dlm import DiffusionLM
from harness.processes.masked.forward import (
    VALIDATION_SEED,
    MaskingConfig,
    diffusion_loss,
    mask_response,
    masked_token_ce,
    noise_bin_edges,
    sft_batch_of,
)

Encoded = tuple[list[int], list[int]]  # (prompt ids, answer ids)


class DiffusionObjective:
    """The masked-diffusion SFT loss: one noise level per example, masks over the answer."""

    name = "masked-diffusion"

    def micro_loss(self, dlm, adapter, micro, config: TrainConfig, generator, autocast):
        tok, device = dlm.tokenizer, dlm.device
        masking = MaskingConfig(config.masking, normalize=config.normalize)
        ids, response = sft_batch_of(micro, tok, config.max_length, config.eos_tail)
        t = torch.rand(len(micro), generator=generator)
        batch = mask_response(ids, response, t, tok.mask_token_id, masking, generator)
        with autocast:
            logits = dlm(batch.input_ids.to(device), batch.noise_level.to(device))
        loss, _ = diffusion_loss(logits, _to(batch, device), masking)
        return loss, ids.numel()

    def validation_bins(self, dlm, val_data, config: TrainConfig, autocast) -> list[dict]:
        masking = MaskingConfig(config.masking, normalize=config.normalize)
        return validation_loss(dlm, val_data, config, masking)


def _to(batch, device):
    if batch.target_ids.device == device:
        return batch
    return replace(
        batch,
        input_ids=batch.input_ids.to(device),
        target_ids=batch.target_ids.to(device),
        masked=batch.masked.to(device),
        mask_prob=batch.mask_prob.to(device),
        noise_level=batch.noise_level.to(device),
        response_len=batch.response_len.to(device),
    )


@torch.no_grad()
def validation_loss(
    dlm: DiffusionLM, val_data: Sequence[Encoded], config: TrainConfig, masking: MaskingConfig
) -> list[dict]:
    """Loss per noise bin on the held-out examples, with the same masks for every method.

    Every validation example is noised at every bin's mid level (so each bin holds all the
    examples and the curve is smooth enough to read), with masks drawn from a fixed seed; we
    report the 1/p-weighted loss (the training objective) and the plain cross-entropy per masked
    token.
    """
    device = dlm.device
    tok = dlm.tokenizer
    generator = torch.Generator().manual_seed(VALIDATION_SEED)
    rows = []
    for lo, hi in noise_bin_edges(config.noise_bins):
        weighted_sum, ce_sum, tokens, count = 0.0, 0.0, 0, 0
        for start in range(0, len(val_data), config.batch_size):
            chunk = val_data[start : start + config.batch_size]
            ids, response = sft_batch_of(chunk, tok, config.max_length, config.eos_tail)
            t = torch.full((len(chunk),), (lo + hi) / 2)
            batch = mask_response(ids, response, t, tok.mask_token_id, masking, generator)
            with autocast_for(device):
                logits = dlm(batch.input_ids.to(device), batch.noise_level.to(device))
            batch = _to(batch, device)
            _, per_example = diffusion_loss(logits, batch, masking)
            ce, n = masked_token_ce(logits, batch)
            weighted_sum += float(per_example.sum())
            ce_sum += float(ce.sum())
            tokens += int(n.sum())
            count += len(chunk)
        rows.append(
            {
                "bin_lo": lo,
                "bin_hi": hi,
                "weighted_loss": weighted_sum / count,
                "ce_per_token": ce_sum / tokens if tokens else None,
                "n_tokens": tokens,
            }
        )
    return rows
