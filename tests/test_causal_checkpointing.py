"""train.gradient_checkpointing on autoregressive bases: the same loss and gradients as without it
on a tiny Llama and Qwen2 (LoRA and DoRA through transformers' checkpointing, L2D's flow stream
through its own), and the layers really are recomputed in backward."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch

from harness.config.cell import TrainConfig
from harness.processes.causal.objective import CausalObjective
from methods.registry import get_method
from tests.causal_models import make_causal_lm, perturb

METHODS = {
    "lora": {"rank": 4},
    "dora": {"rank": 4},
    "l2d": {"rank": 4, "rep_size": 8, "embed_dim": 16},
}


def _step(kind: str, method: str, checkpointing: bool):
    """(loss, gradients of the trainable parameters, forwards of the watched module)."""
    lm = make_causal_lm(kind, seed=0)
    impl = get_method(method)
    torch.manual_seed(1)
    adapter = impl.apply(lm, impl.config_cls.from_dict(METHODS[method]))
    perturb(adapter.trainable_parameters(), seed=2)  # zero-initialised factors would hide bugs
    lm.train()
    if checkpointing:
        lm.enable_gradient_checkpointing()
    backbone = lm.backbone
    if method == "l2d":  # the flow stream's first layer: its modulation head runs per forward
        watched = backbone.layers[0].modulation
    else:  # inside a decoder layer: transformers checkpoints forward, not the layer's hooks
        watched = backbone.get_base_model().model.layers[0].self_attn
    calls = []
    watched.register_forward_pre_hook(lambda *a: calls.append(1))  # recompute stops early
    tok = lm.tokenizer
    micro = [
        (tok.encode_prompt("12+30="), tok.encode("42")),
        (tok.encode_prompt("abc"), tok.encode("defg")),
    ]
    generator = torch.Generator().manual_seed(0)
    loss, _ = CausalObjective().micro_loss(
        lm, adapter, micro, TrainConfig(max_length=64), generator, nullcontext()
    )
    loss.backward()
    return (
        float(loss.detach()),
        [p.grad.clone() for p in adapter.trainable_parameters()],
        len(calls),
    )


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
@pytest.mark.parametrize("method", list(METHODS))
def test_checkpointing_gives_the_same_loss_and_gradients(kind, method):
    loss, grads, forwards = _step(kind, method, checkpointing=False)
    loss_ckpt, grads_ckpt, forwards_ckpt = _step(kind, method, checkpointing=True)
    assert loss_ckpt == loss
    assert len(grads) == len(grads_ckpt) and any(g.abs().sum() > 0 for g in grads)
    for g, g_ckpt in zip(grads, grads_ckpt, strict=True):
        torch.testing.assert_close(g_ckpt, g, rtol=0, atol=1e-6)
    assert (forwards, forwards_ckpt) == (1, 2)  # recomputed once in backward


def test_a_causal_cell_trains_with_checkpointing():
    from harness.processes.training import train_adapter

    curves = []
    for checkpointing in (False, True):
        lm = make_causal_lm("llama", seed=0)
        impl = get_method("l2d")
        torch.manual_seed(1)
        adapter = impl.apply(lm, impl.config_cls.from_dict(METHODS["l2d"]))
        tok = lm.tokenizer
        data = [(tok.encode_prompt(f"{i}+1="), tok.encode(str(i + 1))) for i in range(8)]
        config = TrainConfig(
            steps=2, lr=1e-2, batch_size=4, grad_accum=1, warmup_ratio=0.0, val_examples=2,
            val_every=2, noise_bins=2, max_length=32, gradient_checkpointing=checkpointing,
        )  # fmt: skip
        result = train_adapter(lm, adapter, data, data[:2], config, seed=0)
        curves.append([p["loss"] for p in result.curve])
    assert len(curves[0]) == 2
    assert curves[1] == pytest.approx(curves[0], abs=1e-6)
