"""Fast sampling on the released LLaDA and Dream code (tiny random-weight models): parallel
decoding needs no model support; the cache has no backend for these families yet, so a cached
setting says so and runs exactly the uncached sampler."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from harness.models.loader import load_model
from harness.sampling import SamplerConfig, SamplingStats, generate
from tests.released_models import build_dream, build_llada, require_fixtures

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPTS = ["Q: 7+1=", "A longer question: 2+2=", "Hi"]


@pytest.mark.parametrize("build", [build_llada, build_dream], ids=["llada", "dream"])
def test_parallel_decoding_runs_and_a_cache_falls_back_exactly(build, tmp_path):
    require_fixtures()
    dlm = load_model(str(build(tmp_path)), "cpu")
    with torch.no_grad():  # confident predictions, so the rule commits several tokens a step
        dlm.backbone.get_output_embeddings().weight.mul_(50)
    prompts = [dlm.tokenizer.encode_prompt(p) for p in PROMPTS]
    config = SamplerConfig(gen_length=8, steps=8, block_length=4, parallel="threshold:0.3")
    stats = SamplingStats()
    together = generate(dlm, prompts, config, stats=stats)
    assert together == [generate(dlm, [p], config)[0] for p in prompts]
    assert stats.tokens <= 3 * 8 and stats.forwards <= 8
    cached, cached_stats = dataclasses.replace(config, cache="dual"), SamplingStats()
    assert generate(dlm, prompts, cached, stats=cached_stats) == together
    assert cached_stats.cache_used == "none"
