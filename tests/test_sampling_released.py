"""Fast sampling on the released LLaDA and Dream code (tiny random-weight models,
tests/released_models.py): the cache backends of harness/models/released_cache.py wrap the
released attention modules. Over a frozen context a cached window forward equals the uncached
forward; cached generation of a batch equals its rows one by one; recording at every step gives
exactly the uncached tokens; the cache actually used is recorded."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from harness.ground.device import autocast_for
from harness.models.loader import load_model
from harness.models.registry import get_family
from harness.processes.masked.sampling import SamplerConfig, SamplingStats, generate, left_pad
from methods import get_method
from tests.released_models import TEST_DEVICE, build_llada, require_fixtures, tolerance

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _evaluation_autocast():
    """bf16 autocast on a GPU (BENCH_TEST_DEVICE=cuda), as bench evaluates there."""
    with autocast_for(torch.device(TEST_DEVICE)):
        yield


PROMPTS = ["Q: 7+1=", "A longer question: 2+2=", "Hi"]  # different lengths: left padding
KINDS = ["llada", "dream", "dream-hub"]  # dream-hub: the hub's DreamModel.forward (no mask block)


def _load(released_folder, kind: str, method: str | None = None, sharpen: float = 1.0):
    """The released model; optionally an adapter whose every weight is random (so it matters)."""
    require_fixtures()
    dlm = load_model(str(released_folder(kind)), TEST_DEVICE)
    with torch.no_grad():  # confident predictions, so parallel rules commit several tokens
        dlm.backbone.get_output_embeddings().weight.mul_(sharpen)
    if method is not None:
        fields = {"rank": 4, "dropout": 0.0}
        if method == "nara":
            fields["hidden_sizes"] = (8, 8)
        get_method(method).apply(dlm, get_method(method).config(**fields))
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for name, p in dlm.named_parameters():
                if p.requires_grad:
                    p.copy_(torch.randn(p.shape, generator=g) * (0.3 if "lora" in name else 0.5))
    return dlm.eval()


def _frozen_context(dlm):
    ids, prompt_attention = left_pad(
        [dlm.tokenizer.encode_prompt(p) for p in PROMPTS], dlm.tokenizer.pad_token_id
    )
    gen = torch.randint(40, 120, (3, 16), generator=torch.Generator().manual_seed(0))
    gen[:, 6:] = dlm.mask_id
    x = torch.cat([ids, gen], 1)
    attention = torch.cat([prompt_attention, torch.ones_like(gen)], 1)
    assert not bool(attention.all())  # padding is really exercised
    return x.to(dlm.device), attention.to(dlm.device), ids.shape[1]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ["lora", "nara"])
@pytest.mark.parametrize("window", ["prefix", "dual"])
def test_cached_window_over_a_frozen_context_equals_the_uncached_forward(
    kind, method, window, released_folder
):
    _assert_cached_window_exact(_load(released_folder, kind, method), window)


def test_llada_with_query_and_key_norms_caches_its_keys_before_the_norm(tmp_path):
    """LLaDA's optional q/k layer norms run inside ``attention``: cached keys are normed there."""
    require_fixtures()
    folder = build_llada(tmp_path, attention_layer_norm=True, n_layers=2)
    dlm = load_model(str(folder), TEST_DEVICE).eval()
    with torch.no_grad():
        for block in get_family("llada").cache_backend.blocks(dlm):
            block.k_norm.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(3))
    _assert_cached_window_exact(dlm, "dual")


def test_llada_dual_window_keeps_each_key_in_its_bias_column(released_folder):
    """The dual window hands LLaDA its keys in another order; a bias that depends on both the
    query and the key position (here a random one passed to the model, since LLaDA's own padding
    bias depends on the key alone and ALiBi is refused) must follow them."""
    import functools

    dlm = _load(released_folder, "llada", "lora")
    backend = get_family("llada").cache_backend
    x, attention, prompt_len = _frozen_context(dlm)
    bias = torch.randn(1, 1, *x.shape[1:] * 2, generator=torch.Generator().manual_seed(5))
    bias = bias.to(dlm.device)
    dlm.backbone.forward = functools.partial(dlm.backbone.forward, attention_bias=bias)
    level, start = torch.tensor([0.6, 0.7, 0.8], device=dlm.device), prompt_len + 4
    with torch.no_grad():
        full = dlm(x, level, attention)
        _, cache = backend.record(dlm, x, level, attention)
        read = backend.read(dlm, x[:, start : start + 4], start, level, attention, cache)
    torch.testing.assert_close(read, full[:, start : start + 4], **tolerance(read.dtype))


@pytest.mark.parametrize("kind", ["dream", "dream-hub"])
@pytest.mark.parametrize("window", ["prefix", "dual"])
def test_dream_eager_attention_under_the_cache_equals_its_uncached_forward(
    kind, window, released_folder
):
    """Dream's eager ``DreamAttention`` (what its SDPA class falls back to, and what a build with
    ``attn_implementation="eager"`` would use) takes the same injected cache and window mask.
    The released decoder layer always builds ``DreamSdpaAttention``, so each module is switched
    to its eager parent class here."""
    dlm = _load(released_folder, kind, "nara")
    modules = get_family("dream").cache_backend.attentions(dlm)
    eager = type(modules[0]).__mro__[1]
    assert eager.__name__ == "DreamAttention" and type(modules[0]).__name__ != eager.__name__
    for module in modules:
        module.__class__ = eager
    _assert_cached_window_exact(dlm, window)


def _assert_cached_window_exact(dlm, window: str) -> None:
    backend = dlm.family.cache_backend
    x, attention, prompt_len = _frozen_context(dlm)
    level = torch.tensor([0.6, 0.7, 0.8], device=dlm.device)
    start = prompt_len + 4
    end = start + 4 if window == "dual" else x.shape[1]
    with torch.no_grad():
        full = dlm(x, level, attention)
        recorded, cache = backend.record(dlm, x, level, attention)
        read = backend.read(dlm, x[:, start:end], start, level, attention, cache)
        rows = torch.tensor(
            [2, 0], device=dlm.device
        )  # a subset of rows, in another order, reads its own cache
        part = backend.read(
            dlm,
            x[rows, start:end],
            start,
            level[rows],
            attention[rows],
            backend.select(cache, rows),
        )
        # outside the window only the cache counts: other tokens there change nothing
        other = x.clone()
        other[:, prompt_len : prompt_len + 2] = 50
        if window == "dual":
            other[:, end:] = 60
        moved = backend.read(dlm, other[:, start:end], start, level, attention, cache)
        changed = dlm(other, level, attention)
        # the longest prompt alone has no padding: the family's unpadded inputs
        alone = slice(1, 2)
        assert bool(attention[alone].all())
        alone_full = dlm(x[alone], level[alone], attention[alone])
        _, alone_cache = backend.record(dlm, x[alone], level[alone], attention[alone])
        alone_read = backend.read(
            dlm, x[alone, start:end], start, level[alone], attention[alone], alone_cache
        )
    torch.testing.assert_close(recorded, full, rtol=0, atol=0)
    assert read.shape == full[:, start:end].shape
    torch.testing.assert_close(read, full[:, start:end], **tolerance(read.dtype))
    torch.testing.assert_close(part, full[rows, start:end], **tolerance(part.dtype))
    torch.testing.assert_close(moved, read, rtol=0, atol=0)
    torch.testing.assert_close(alone_read, alone_full[:, start:end], **tolerance(alone_read.dtype))
    assert not torch.allclose(changed[:, start:end], read, atol=1e-4)
    assert len(cache.keys) == 2 and cache.ids.shape == x.shape


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_cached_generation_of_a_batch_equals_its_rows_and_records_the_cache(
    kind, cache, released_folder
):
    dlm = _load(released_folder, kind, "nara", sharpen=50.0)
    prompts = [dlm.tokenizer.encode_prompt(p) for p in PROMPTS]
    config = SamplerConfig(
        gen_length=8, steps=8, block_length=4, cache=cache, parallel="threshold:0.3"
    )
    stats = SamplingStats()
    together = generate(dlm, prompts, config, stats=stats)
    assert together == [generate(dlm, [p], config)[0] for p in prompts]
    assert stats.cache_used == cache
    assert all(len(row) > 0 for row in together)
    # recording at every step leaves nothing stale: exactly the uncached tokens
    always = dataclasses.replace(config, cache_refresh="step-level-change:0.0001")
    plain = dataclasses.replace(config, cache="none")
    assert generate(dlm, prompts, always) == generate(dlm, prompts, plain)


@pytest.mark.parametrize("window", ["prefix", "dual"])
def test_a_cached_step_runs_only_the_window(window, released_folder):
    """The released blocks see window-length hidden states on every step but each block's first,
    and so does LLaDA's attention output projection (no queries for the cached suffix)."""
    dlm = _load(released_folder, "llada")
    prompts = [dlm.tokenizer.encode_prompt(p) for p in PROMPTS]
    lengths, projected = [], []
    block = get_family("llada").cache_backend.blocks(dlm)[0]
    hooks = [
        block.register_forward_pre_hook(lambda m, args: lengths.append(args[0].shape[1])),
        block.attn_out.register_forward_pre_hook(lambda m, a: projected.append(a[0].shape[1])),
    ]
    try:
        config = SamplerConfig(gen_length=8, steps=8, block_length=4, cache=window)
        generate(dlm, prompts, config)
    finally:
        for hook in hooks:
            hook.remove()
    width = max(len(p) for p in prompts) + 8
    runs = [4, 4, 4] if window == "dual" else [8, 8, 8]
    assert lengths == projected == [width, *runs, width, 4, 4, 4]


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_parallel_decoding_without_a_cache_batch_equals_its_rows(kind, released_folder):
    dlm = _load(released_folder, kind, sharpen=50.0)
    prompts = [dlm.tokenizer.encode_prompt(p) for p in PROMPTS]
    config = SamplerConfig(gen_length=8, steps=8, block_length=4, parallel="threshold:0.3")
    stats = SamplingStats()
    together = generate(dlm, prompts, config, stats=stats)
    assert together == [generate(dlm, [p], config)[0] for p in prompts]
    assert stats.tokens <= 3 * 8 and stats.forwards <= 8 and stats.cache_used == "none"


def test_wrapping_restores_what_was_there(released_folder):
    """The backends' per-forward wrappers leave no trace, and put back an instance ``forward``
    that was there before (accelerate's device hooks install one)."""
    dlm = _load(released_folder, "dream")
    backend = get_family("dream").cache_backend
    modules = backend.attentions(dlm)
    calls = []
    hooked = modules[0].forward

    def hook(*args, **kwargs):
        calls.append(1)
        return hooked(*args, **kwargs)

    modules[0].forward = hook
    x, attention, _ = _frozen_context(dlm)
    with torch.no_grad():
        backend.record(dlm, x, torch.full((3,), 0.5, device=dlm.device), attention)
    assert calls == [1] and modules[0].forward is hook
    assert all("forward" not in m.__dict__ for m in modules[1:])
    llada = _load(released_folder, "llada")
    x, attention, _ = _frozen_context(llada)
    with torch.no_grad():
        get_family("llada").cache_backend.record(
            llada, x, torch.full((3,), 0.5, device=llada.device), attention
        )
    assert all(
        "attention" not in b.__dict__ for b in get_family("llada").cache_backend.blocks(llada)
    )
