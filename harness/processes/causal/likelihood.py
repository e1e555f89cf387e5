"""Log-likelihood of a continuation under a causal base: exact, the sum of its tokens' log
probabilities given everything before them (one teacher-forced forward; L2D integrates one flow
per scored position, all at once)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from harness.ground.errors import BenchError
from harness.processes.masked.likelihood import LikelihoodEstimate


@torch.no_grad()
def causal_loglikelihood(
    lm, prefix: Sequence[int], target: Sequence[int], settings=None
) -> LikelihoodEstimate:
    if len(target) == 0:
        raise BenchError("cannot score an empty continuation")
    if len(prefix) == 0:
        raise BenchError("an autoregressive base scores a continuation after a non-empty prefix")
    ids = torch.tensor([list(prefix) + list(target)], dtype=torch.long, device=lm.device)
    logits = lm.continuation_logits(ids, torch.ones_like(ids), len(prefix), settings)
    logp = torch.log_softmax(logits.float(), dim=-1)
    gold = ids[:, len(prefix) :]
    total = logp.gather(-1, gold[..., None]).sum()
    return LikelihoodEstimate(loglik=float(total), stderr=0.0, mc_num=1)
