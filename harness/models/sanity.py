"""Load-time sanity check: a model that would give silently wrong numbers stops with one line.

Checked after every load of a transformers model (tiny models are built by bench itself):
- every floating-point parameter and buffer is finite (NaN/inf from a bad checkpoint, or memory
  left uninitialised by the loader);
- the family's rotary tables equal their definition in the config, recomputed independently in
  float64 (Dream's ``inv_freq`` buffers, LLaDA's cached sin/cos tables);
- a short probe (BOS, a few tokens, masks; once more left-padded in a batch of two, through the
  family's own input construction) gives finite logits with at least the tokenizer's vocabulary.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.ground.errors import BenchError


def nonfinite_tensors(model: nn.Module) -> list[str]:
    bad = []
    named = [*model.named_parameters(), *model.named_buffers()]
    for name, tensor in named:
        floating = tensor.is_floating_point() and tensor.device.type != "meta"
        if floating and not bool(torch.isfinite(tensor).all()):
            bad.append(name)
    return bad


def check_loaded(dlm, family) -> None:
    """Raise one BenchError line naming the first problem of a freshly loaded model."""
    backbone = dlm.backbone
    where = f"model {dlm.info.name!r}"
    bad = nonfinite_tensors(backbone)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise BenchError(f"{where} has non-finite values in {bad[0]}{more}: corrupt checkpoint")
    problems = family.rotary_problems(backbone)
    if problems:
        raise BenchError(f"{where}: {problems[0]}: rotary tables are wrong")
    _probe(dlm, where)


@torch.no_grad()
def _probe(dlm, where: str) -> None:
    tok = dlm.tokenizer
    text_ids = tok.encode("1 + 1 = ")[:6] or [tok.eos_token_id]
    row = [*tok.bos_prefix, *text_ids, tok.mask_token_id, tok.mask_token_id]
    ids = torch.tensor([row], device=dlm.device)
    short = row[1:] if len(row) > 2 else row
    padded = torch.tensor([row, [tok.pad_token_id] * (len(row) - len(short)) + short])
    attention = torch.ones_like(padded)
    attention[1, : len(row) - len(short)] = 0
    level = torch.ones(1, device=dlm.device)
    was_training = dlm.training
    dlm.eval()
    try:
        for x, att in ((ids, None), (padded.to(dlm.device), attention.to(dlm.device))):
            logits = dlm(x, level.expand(x.shape[0]), att)
            real = logits if att is None else logits[att.bool()]
            if not bool(torch.isfinite(real).all()):
                padding = " with left padding" if att is not None else ""
                raise BenchError(f"{where} gives non-finite logits on a short probe{padding}")
            if logits.shape[-1] < tok.vocab_size:
                raise BenchError(
                    f"{where} has {logits.shape[-1]} output logits, fewer than the tokenizer's "
                    f"{tok.vocab_size} tokens: tokenizer and model do not match"
                )
    finally:
        dlm.train(was_training)
