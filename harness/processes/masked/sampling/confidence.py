"""The number a commit rule ranks: the probability of each candidate token, computed in float32
where bench follows LLaDA's ``generate`` (no cache, LLaDA's rules) and in float64 where it
follows Fast-dLLM's code (its ``fastdllm-`` rules and its prefix/dual caches, which take their
softmax in float64), never in the model's dtype, so a bf16 model cannot tie or reorder two
positions that the references would tell apart in a wider type (a peaked model's probabilities
near 1 tie in float32 and not in float64). Only the positions a rule may commit are scored.

LLaDA's two EOS options (its ``generate``, Appendix B.4 of the LLaDA paper) act here:

- ``logits_eos_inf``: EOS can never be a candidate (its logit is ``-inf`` before the argmax).
- ``confidence_eos_eot_inf``: a candidate that is EOS or EOT (``<|eot_id|>``) gets confidence 0,
  and the other candidates' probabilities are renormalised without them. As in LLaDA's code,
  EOS is left in at ``temperature > 0`` (there the reference writes its ``-inf`` to the noisy copy
  of the logits, which is not read again): only EOT is dropped then.
"""

from __future__ import annotations

import torch

from harness.ground.errors import BenchError
from harness.processes.masked.sampling.config import SamplerConfig

EOT_TOKEN = "<|eot_id|>"


def end_ids(dlm, config: SamplerConfig) -> tuple[int, int | None]:
    """The model's EOS and, when ``confidence_eos_eot_inf`` needs it, its EOT id."""
    eos = dlm.tokenizer.eos_token_id
    if not config.confidence_eos_eot_inf:
        return eos, None
    vocab = getattr(getattr(dlm.tokenizer, "tok", None), "get_vocab", dict)()
    if EOT_TOKEN not in vocab:
        raise BenchError(
            f"{dlm.info.name}: confidence_eos_eot_inf needs the EOT token {EOT_TOKEN} "
            "(LLaDA's tokenizer); this tokenizer has none"
        )
    return eos, int(vocab[EOT_TOKEN])


def confidence_dtype(config: SamplerConfig, cached: bool) -> torch.dtype:
    """float64 with Fast-dLLM's rules or a cache in use (``cached``), else float32."""
    return torch.float64 if cached or config.parallel_rule.ignores_steps else torch.float32


def suppress_eos(logits: torch.Tensor, config: SamplerConfig, eos: int) -> torch.Tensor:
    """``logits_eos_inf``: EOS's logit at ``-inf`` (in place; the logits are the step's own)."""
    if config.logits_eos_inf:
        logits[..., eos] = -torch.inf
    return logits


def candidate_confidence(
    logits: torch.Tensor, candidates: torch.Tensor, config: SamplerConfig, ends: tuple, cached: bool
) -> torch.Tensor:
    """Probability of each candidate under ``logits`` (the positions a rule may commit)."""
    # contiguous: a strided view can take another softmax kernel, whose last bit may differ
    wide = logits.to(confidence_dtype(config, cached)).contiguous()
    eos, eot = ends
    if config.confidence_eos_eot_inf:
        wide = wide.clone() if wide.data_ptr() == logits.data_ptr() else wide
        wide[..., eot] = -torch.inf
        if config.temperature == 0:
            wide[..., eos] = -torch.inf
    probs = torch.softmax(wide, dim=-1)
    return probs.gather(-1, candidates[..., None]).squeeze(-1)
