"""Loading autoregressive bases: the tiny causal LM built here and Llama / Qwen2 checkpoints.

Both load through transformers' own ``AutoModelForCausalLM`` classes (no remote code, nothing to
repair). Missing or mismatched checkpoint weights stop the load with one line, as for the dLLMs.
A causal LM needs no mask token: its tokenizer wrapper uses the pad id in that slot.
"""

from __future__ import annotations

import torch

from harness.ground.errors import BenchError
from harness.models.causal import CausalLM
from harness.models.dlm import ModelInfo
from harness.models.family import AUTOREGRESSIVE, Family
from harness.models.tokenizer import CharTokenizer, HFTokenizer


def load_tiny_ar(folder, name: str, device: torch.device) -> CausalLM:
    from transformers import LlamaForCausalLM

    backbone = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device).eval()
    info = ModelInfo(name=name, family="tiny-ar", source=str(folder))
    return CausalLM(backbone, CharTokenizer.from_pretrained(folder), info)


def load_causal(
    source: str,
    name: str,
    family: Family,
    device: torch.device,
    dtype: torch.dtype,
    local_files_only: bool = False,
) -> CausalLM:
    """Tokenizer + causal LM of a folder or hub id through transformers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.models.remote import _check_loading

    common = {"local_files_only": local_files_only}
    tok = AutoTokenizer.from_pretrained(source, **common)
    if tok.eos_token_id is None:
        raise BenchError(f"the tokenizer of {name!r} has no EOS token")
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    tokenizer = HFTokenizer(tok, name, mask_token_id=pad, prepend_bos=tok.bos_token_id is not None)
    model, loading = AutoModelForCausalLM.from_pretrained(
        source, dtype=dtype, output_loading_info=True, **common
    )
    _check_loading(source, loading)
    model = model.to(device).eval()
    info = ModelInfo(name=name, family=family.name, source=source)
    return CausalLM(model, tokenizer, info)


# Causal LMs through transformers' own classes (no remote code, nothing to repair). The tiny
# autoregressive base is a small transformers Llama with the character tokenizer.
TINY_AR_FAMILY = Family("tiny-ar", objective=AUTOREGRESSIVE, load=load_causal)
LLAMA_FAMILY = Family("llama", objective=AUTOREGRESSIVE, load=load_causal)
QWEN2_FAMILY = Family("qwen2", objective=AUTOREGRESSIVE, load=load_causal)
