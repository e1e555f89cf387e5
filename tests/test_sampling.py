"""Fast sampling (harness.processes.masked.sampling): the plain path reproduces the old sampler token by token,
the tiny model's KV cache equals the uncached forward over a frozen context for every method,
the parallel rules, batches against rows, noise levels under a cache, and the settings' errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from harness.config.sampling import ParallelRule
from harness.ground.errors import BenchError
from harness.models.dlm import ModelInfo
from harness.models.tiny import CacheUse, TinyKVCache
from harness.processes.masked.sampling import SamplerConfig, SamplingStats, generate
from harness.processes.masked.sampling.parallel import commit_mask
from tests import reference_sampler
from tests.conftest import LevelRecorder, make_tiny_dlm

PROMPTS = [[10, 11, 12, 13, 14, 15, 16, 17, 18], [20, 21], [30, 31, 32, 33, 34]]
METHODS = ("lora", "dora", "static_core", "nara")
SETTINGS = [
    (cache, parallel)
    for cache in ("none", "prefix", "dual")
    for parallel in ("none", "threshold:0.3", "factor:1.0")
]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny forwards are dominated by thread hand-offs on a loaded machine: one thread is ~50x
    faster here and gives the same numbers."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sharpen(dlm, factor: float = 50.0):
    """Random weights give near-uniform predictions; a scaled head gives confident ones, so the
    parallel rules commit several tokens per step and rows finish blocks at different steps."""
    with torch.no_grad():
        dlm.backbone.get_output_embeddings().weight.mul_(factor)
    return dlm


def adapted(method: str, seed: int = 0):
    """A tiny sharpened random model with a method whose every adapter weight is random."""
    from methods import get_method

    dlm = sharpen(make_tiny_dlm(seed))
    fields = {"rank": 4, "dropout": 0.0}
    if method == "nara":
        fields["hidden_sizes"] = (8, 8)
    get_method(method).apply(dlm, get_method(method).config(**fields))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in dlm.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * (0.3 if "lora" in name else 0.5))
    return dlm.eval()


def reference(dlm, prompts, config: SamplerConfig, generator=None):
    fields = {
        f.name: getattr(config, f.name) for f in dataclasses.fields(reference_sampler.SamplerConfig)
    }
    return reference_sampler.generate(
        dlm, prompts, reference_sampler.SamplerConfig(**fields), generator
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gen_length": 16, "steps": 16, "block_length": 4},
        {"gen_length": 16, "steps": 8, "block_length": 8, "schedule": "cosine"},
        {"gen_length": 12, "steps": 24, "block_length": 4, "schedule": "cosmap"},
        {"gen_length": 16, "steps": 16, "block_length": 8, "temperature": 0.8},
        {"gen_length": 8, "steps": 4, "block_length": 4, "remasking": "random", "temperature": 0.5},
        {"gen_length": 8, "steps": 8, "block_length": 4, "cfg_scale": 1.0},
        {"gen_length": 8, "steps": 8, "block_length": 8, "noise_level": "sequence"},
    ],
)
@pytest.mark.parametrize("method", [None, "nara"])
def test_plain_settings_reproduce_the_old_sampler_token_by_token(kwargs, method):
    dlm = adapted(method) if method else make_tiny_dlm()
    config = SamplerConfig(**kwargs)
    new = generate(dlm, PROMPTS, config, torch.Generator().manual_seed(3))
    old = reference(dlm, PROMPTS, config, torch.Generator().manual_seed(3))
    assert new == old


def test_plain_settings_reproduce_the_old_sampler_when_rows_stop_at_eos():
    dlm = make_tiny_dlm()
    # an EOS bias measured to make two rows stop after block 5 while one runs to the end
    dlm.backbone.lm_head.bias = torch.nn.Parameter(torch.zeros(dlm.tokenizer.vocab_size))
    with torch.no_grad():
        dlm.backbone.lm_head.bias[dlm.tokenizer.eos_token_id] = 0.25
    config = SamplerConfig(gen_length=24, steps=24, block_length=4)
    new = generate(dlm, PROMPTS, config)
    assert new == reference(dlm, PROMPTS, config)
    assert len({len(o) for o in new}) > 1  # the case is really exercised


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("window", ["prefix", "dual"])
def test_cached_forward_over_a_frozen_context_equals_the_uncached_forward(method, window):
    dlm = adapted(method)
    from harness.processes.masked.sampling.loop import left_pad

    ids, prompt_attention = left_pad(PROMPTS, dlm.tokenizer.pad_token_id)
    gen = torch.randint(3, 90, (3, 16), generator=torch.Generator().manual_seed(0))
    gen[:, 6:] = dlm.mask_id
    x = torch.cat([ids, gen], 1)
    attention = torch.cat([prompt_attention, torch.ones_like(gen)], 1)
    level = torch.tensor([0.6, 0.7, 0.8])
    with torch.no_grad():
        full = dlm(x, level, attention)
        cache = TinyKVCache()
        recorded = dlm(x, level, attention, kv_cache=CacheUse(cache, "record"))
        start = ids.shape[1] + 4
        end = start + 4 if window == "dual" else x.shape[1]
        read = dlm(x[:, start:end], level, attention, kv_cache=CacheUse(cache, "read", start))
    torch.testing.assert_close(recorded, full, rtol=0, atol=0)
    torch.testing.assert_close(read, full[:, start:end], rtol=1e-5, atol=1e-5)
    assert len(cache.keys) == 2 and cache.keys[0].shape[2] == x.shape[1]


def test_a_stale_level_changes_the_cached_forward_of_nara_only():
    """The staleness being measured is real: NaRA's window computed at a new level over a cache
    recorded at an old one differs from the fresh forward; LoRA's does not."""
    for method, differs in (("lora", False), ("nara", True)):
        dlm = adapted(method)
        x = torch.randint(3, 90, (1, 20), generator=torch.Generator().manual_seed(1))
        old, new = torch.tensor([0.9]), torch.tensor([0.2])
        with torch.no_grad():
            cache = TinyKVCache()
            dlm(x, old, None, kv_cache=CacheUse(cache, "record"))
            read = dlm(x[:, 8:12], new, None, kv_cache=CacheUse(cache, "read", 8))
            fresh = dlm(x, new)[:, 8:12]
        assert (not torch.allclose(read, fresh, atol=1e-5)) == differs


@pytest.mark.parametrize("cache", ["none", "dual"])
def test_threshold_one_commits_like_the_plain_rule(cache):
    dlm = adapted("nara")
    plain = SamplerConfig(gen_length=16, steps=16, block_length=8, cache=cache)
    rule = dataclasses.replace(plain, parallel="threshold:1.0")
    plain_stats, rule_stats = SamplingStats(), SamplingStats()
    assert generate(dlm, PROMPTS, plain, stats=plain_stats) == generate(
        dlm, PROMPTS, rule, stats=rule_stats
    )
    assert plain_stats.forwards == rule_stats.forwards == 16


def test_saturated_confidence_still_commits_one_token_under_threshold_one():
    confidence = torch.tensor([[1.0, 1.0, 0.5, -torch.inf]])
    eligible = torch.tensor([[True, True, True, False]])
    mask = commit_mask(confidence, eligible, 1, ParallelRule("threshold", 1.0))
    assert int(mask.sum()) == 1


def test_parallel_rules_commit_the_confident_head_and_at_least_the_floor():
    confidence = torch.tensor([[0.95, 0.2, 0.91, 0.85, -torch.inf], [0.1, 0.3, 0.2, 0.4, 0.05]])
    eligible = confidence > -torch.inf
    threshold = commit_mask(confidence, eligible, 1, ParallelRule("threshold", 0.9))
    assert threshold.tolist() == [
        [True, False, True, False, False],
        [False, False, False, True, False],  # nothing passes: the most confident one
    ]
    # factor 1: c_i >= 1 - 1/(i+1): 0.95 (first), 0.91 >= 0.667, 0.85 >= 0.75, 0.2 < 0.8
    factor = commit_mask(confidence, eligible, 1, ParallelRule("factor", 1.0))
    assert factor[0].tolist() == [True, False, True, True, False]
    assert int(factor[1].sum()) == 1
    floor = commit_mask(confidence, eligible, 3, ParallelRule("threshold", 0.9))
    assert floor.sum(dim=1).tolist() == [3, 3]


@pytest.mark.parametrize("cache, parallel", SETTINGS)
def test_a_batch_equals_its_rows_one_by_one(cache, parallel):
    dlm = adapted("nara")
    config = SamplerConfig(gen_length=16, steps=16, block_length=4, cache=cache, parallel=parallel)
    stats = SamplingStats()
    together = generate(dlm, PROMPTS, config, stats=stats)
    assert together == [generate(dlm, [p], config)[0] for p in PROMPTS]
    if parallel != "none":  # several tokens per step, rows finishing blocks apart
        assert stats.row_forwards < 3 * 16 and stats.row_forwards < 3 * stats.forwards


def test_a_batch_equals_its_rows_with_per_row_refresh():
    dlm = adapted("nara")
    config = SamplerConfig(
        gen_length=16, steps=16, block_length=8, cache="dual", cache_refresh="step-level-change:0.2"
    )
    together = generate(dlm, PROMPTS, config)
    assert together == [generate(dlm, [p], config)[0] for p in PROMPTS]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cache, parallel", [("dual", "threshold:0.3"), ("prefix", "factor:1.0")])
@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_every_method_and_temperature_decodes_every_position(method, cache, parallel, temperature):
    dlm = adapted(method)
    config = SamplerConfig(
        gen_length=16,
        steps=16,
        block_length=8,
        cache=cache,
        parallel=parallel,
        temperature=temperature,
        stop_at_eos=False,
    )
    stats = SamplingStats()
    out = generate(dlm, PROMPTS, config, torch.Generator().manual_seed(0), stats=stats)
    assert len(out) == 3
    assert stats.tokens == 3 * 16 and stats.cache_used == cache
    assert stats.row_forwards < 3 * 16


def test_refreshing_every_step_makes_the_cache_exact():
    """A refresh bound below any level change records the cache at every step: the same tokens
    as no cache, so the cache's only effect is the staleness the refresh rule trades."""
    dlm = adapted("nara")
    base = SamplerConfig(gen_length=16, steps=16, block_length=8)
    always = dataclasses.replace(base, cache="dual", cache_refresh="step-level-change:0.001")
    stats = SamplingStats()
    assert generate(dlm, PROMPTS, always, stats=stats) == generate(dlm, PROMPTS, base)
    assert stats.refreshes == 14  # every step but each block's first (which records anyway)


def test_each_forward_gets_each_rows_level_at_that_step_under_a_cache():
    dlm = make_tiny_dlm()
    levels = LevelRecorder(dlm)
    config = SamplerConfig(gen_length=8, steps=8, block_length=4, cache="dual", stop_at_eos=False)
    generate(dlm, PROMPTS, config)
    assert [round(float(v[0]), 4) for v in levels.levels] == [k / 8 for k in range(8, 0, -1)]


def test_a_family_without_a_cache_backend_falls_back_and_records_it(caplog):
    dlm = make_tiny_dlm()
    dlm.info = ModelInfo("x", "generic", "test")
    config = SamplerConfig(gen_length=8, steps=8, block_length=4, cache="dual")
    stats = SamplingStats()
    with caplog.at_level("WARNING"):
        out = generate(dlm, PROMPTS, config, stats=stats)
    assert out == generate(dlm, PROMPTS, dataclasses.replace(config, cache="none"))
    assert stats.cache_used == "none"


def test_density_conditioned_nara_never_reads_a_window():
    from methods import get_method

    dlm = make_tiny_dlm()
    nara = get_method("nara")
    nara.apply(dlm, nara.config(rank=4, hidden_sizes=(8, 8), conditioning="density"))
    stats = SamplingStats()
    config = SamplerConfig(gen_length=8, steps=8, block_length=4, cache="prefix")
    generate(dlm, PROMPTS, config, stats=stats)
    assert stats.cache_used == "none"


def test_stats_count_only_forwards_that_ran_per_row():
    dlm = make_tiny_dlm()
    stats = SamplingStats()
    # 8 steps over a block of 4: half the steps commit nothing and run no forward
    generate(dlm, PROMPTS, SamplerConfig(gen_length=4, steps=8, block_length=4), stats=stats)
    assert stats.forwards == 4 and stats.row_forwards == 12


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"parallel": "threshold:0"}, "threshold:X with X in"),
        ({"parallel": "threshold:1.5"}, "threshold:X with X in"),
        ({"parallel": "threshold"}, "valid: none"),
        ({"parallel": "factor:-1"}, "factor:X with X > 0"),
        ({"parallel": "top2"}, "valid: none"),
        ({"cache": "full"}, "none, prefix, dual"),
        ({"cache_refresh": "always"}, "step-level-change:X"),
        ({"cache_refresh": "step-level-change:x"}, "no number"),
        ({"parallel": "threshold:0.9", "remasking": "random"}, "remasking=low_confidence"),
        ({"cache": "dual", "cfg_scale": 1.0}, "cfg_scale"),
    ],
)
def test_bad_settings_give_one_clear_error(kwargs, message):
    with pytest.raises(BenchError, match=message):
        SamplerConfig(**kwargs)
