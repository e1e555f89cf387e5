"""DiffusionGemma folders unlike the tests' first one (:data:`tests.diffusion_gemma_models.VARIANTS`:
other head widths, key/value heads, windows, canvases, special-token ids and generation configs).

Every method trains, saves, reloads (same logits) and samples on each; a worker that keeps its
base loaded runs every method cell after cell, with the encoder at level 0 and the decoder at
the canvas level; sampler settings a folder leaves unset are transformers' own defaults (the
same tokens as transformers' ``generate`` on that folder), recorded with where each came from;
and settings that sampling would refuse stop ``bench run`` before any cell runs.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import DiffusionGemmaForBlockDiffusion
from transformers.models.diffusion_gemma import generation_diffusion_gemma as gen

from harness.models.diffusion_gemma import base_model
from harness.models.loader import load_model
from harness.processes.sampler_stats import SamplingStats
from harness.processes.training import train_adapter
from harness.processes.uniform.forward import UniformNoiseConfig, batch_logits, corrupt
from harness.processes.uniform.sampler import (
    FROM_DEFAULT,
    FROM_MODEL,
    FROM_SAMPLING,
    GemmaSamplingConfig,
    generate_canvas,
)
from harness.run.executors.model_cache import BaseModelCache
from methods.registry import get_method, load_adapter
from tests.diffusion_gemma_models import (
    FIELDS,
    METHODS,
    VARIANTS,
    WIDE_GLOBAL,
    build_diffusion_gemma,
    build_variant,
    encoded_pairs,
    probe_logits,
    train_config,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# longer than the wide-global variant's window of 4, so its sliding layers mask
LONG_PROMPT = "Q: 1+2= and some more"


@pytest.fixture(scope="module", params=VARIANTS)
def variant(request, tmp_path_factory):
    return build_variant(tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture(scope="module", params=("tiny", *VARIANTS))
def any_folder(request, tmp_path_factory):
    where = tmp_path_factory.mktemp(request.param)
    if request.param == "tiny":
        return build_diffusion_gemma(where)
    return build_variant(where, request.param)


def _sizes(dlm) -> tuple[int, int]:
    config = base_model(dlm.backbone).config
    return config.canvas_length, config.text_config.vocab_size


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_saves_reloads_and_samples(variant, method, tmp_path):
    dlm = load_model(str(variant), "cpu")
    torch.manual_seed(0)
    m = get_method(method)
    adapter = m.apply(dlm, m.config(rank=4, **FIELDS.get(method, {})))
    data = encoded_pairs(dlm)
    result = train_adapter(dlm, adapter, data, data[:2], train_config(), seed=0)
    assert len(result.curve) == 2 and result.val_bins and result.best_val_loss < 100
    expected = probe_logits(dlm, LONG_PROMPT)
    base = load_model(str(variant), "cpu")
    assert not torch.allclose(probe_logits(base, LONG_PROMPT), expected, atol=1e-6), (
        "training did nothing"
    )
    adapter.save(tmp_path / "adapter")
    load_adapter(base, tmp_path / "adapter")
    torch.testing.assert_close(probe_logits(base.eval(), LONG_PROMPT), expected, rtol=0, atol=1e-6)
    canvas_length, _ = _sizes(base)
    prompt = base.tokenizer.encode_prompt("Q: 7+1=")
    completions, stats = generate_canvas(base, [prompt], GemmaSamplingConfig(canvas_length))
    assert len(completions) == 1 and len(completions[0]) <= canvas_length
    assert stats.decoder_forwards > 0 and all(0 <= lv[0] <= 1 for lv in stats.levels)


def test_a_kept_base_runs_every_method_cell_after_cell_with_the_levels(any_folder):
    cache = BaseModelCache(check=False)
    for method in METHODS:
        dlm = cache.checkout(str(any_folder), "cpu")
        torch.manual_seed(0)
        m = get_method(method)
        adapter = m.apply(dlm, m.config(rank=4, **FIELDS.get(method, {})))
        one_step = train_config(steps=1)
        train_adapter(dlm, adapter, encoded_pairs(dlm), [], one_step, seed=0)
        seen = []
        dlm.channel.subscribe(lambda level, seen=seen: seen.append(level.tolist()))
        data = encoded_pairs(dlm)
        rate = torch.tensor([0.2, 0.9])
        batch = corrupt([p for p, _ in data[:2]], [a for _, a in data[:2]], dlm, rate=rate)
        with torch.no_grad():
            batch_logits(dlm, batch, UniformNoiseConfig(self_conditioning=0.0))
        assert seen == [[0.0, 0.0], batch.level.tolist()], method  # encoder at 0, then decoder
        cache.release(ok=True)
    assert (cache.loads, cache.reuses) == (1, len(METHODS) - 1) and not cache.dropped


def test_unset_sampler_settings_are_transformers_defaults_and_recorded(tmp_path):
    folder = build_variant(tmp_path, WIDE_GLOBAL)  # no entropy_bound, no t_min
    dlm = load_model(str(folder), "cpu")
    tok = dlm.tokenizer
    prompts = [tok.encode_prompt("Q: 7+1="), tok.encode_prompt("Hi")]
    stats = SamplingStats()
    ours, _ = generate_canvas(dlm, prompts, GemmaSamplingConfig(32, seed=5), stats)

    # transformers' own generate on the same folder, nothing passed: it fills the same gaps
    model = DiffusionGemmaForBlockDiffusion.from_pretrained(folder).eval()
    width = max(map(len, prompts))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
    torch.manual_seed(5)
    with torch.no_grad():
        out = model.generate(
            ids, attention_mask=(ids != tok.pad_token_id).long(), max_new_tokens=32
        )
    theirs = []
    for row in out.sequences[:, width:].tolist():
        row = row[: row.index(tok.eos_token_id)] if tok.eos_token_id in row else row
        theirs.append([t for t in row if t != tok.pad_token_id])
    assert ours == theirs

    defaults = gen.DiffusionGemmaGenerationConfig._get_default_generation_params()
    record = stats.to_dict()["generation"]
    assert record["values"] == {
        "max_denoising_steps": 3,
        "entropy_bound": defaults["sampler_config"].entropy_bound,
        "t_min": defaults["t_min"],
        "t_max": 1.0,
        "stability_threshold": 1,
        "confidence_threshold": 0.01,
    }
    assert record["sources"] == {
        "max_denoising_steps": FROM_MODEL,
        "entropy_bound": FROM_DEFAULT,
        "t_min": FROM_DEFAULT,
        "t_max": FROM_MODEL,
        "stability_threshold": FROM_MODEL,
        "confidence_threshold": FROM_MODEL,
    }
    _, asked = generate_canvas(dlm, prompts[:1], GemmaSamplingConfig(8, max_denoising_steps=2))
    assert asked.settings.values["max_denoising_steps"] == 2
    assert asked.settings.sources["max_denoising_steps"] == FROM_SAMPLING


def test_settings_sampling_would_refuse_stop_the_run_before_any_cell(
    tmp_path, monkeypatch, capsys, bench_run
):
    folder = build_variant(tmp_path, WIDE_GLOBAL)
    saved = folder / "generation_config.json"
    settings = json.loads(saved.read_text())
    saved.write_text(json.dumps({**settings, "t_max": 0.3}))  # below the default t_min 0.4
    capsys.readouterr()  # what building the folder printed
    ran = []
    monkeypatch.setattr(
        "harness.run.executors.worker.run_cell", lambda *a, **k: ran.append(a) or 1 / 0
    )
    out = tmp_path / "run"
    grid = ["--model", str(folder), "--methods", "lora", "--tasks", "synth_math", "--limit", "2"]
    code, err = bench_run([*grid, "--out", str(out)])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "t_max 0.3 (generation_config)" in err and "t_min 0.4 (transformers default)" in err
    assert str(saved) in err
    assert not ran and not (out / "cells").exists()  # no cell started, nothing trained

    saved.write_text(json.dumps(settings))
    bad_level = [*grid, "--set", "eval.noise_level=sequence", "--out", str(out)]
    code, err = bench_run(bad_level)
    assert code == 2 and "eval.noise_level 'sequence'" in err and not ran
