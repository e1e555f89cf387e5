"""DiffusionGemma (transformers' built-in block-diffusion model) on a tiny random-weight config.

Loads through bench's loader (by config model_type; the hub alias fails offline in one line),
adapts the text attention of encoder and decoder, trains every method with the uniform-noise
canvas loss, saves and reloads with the same logits, samples through transformers' own
``generate``; and the noise level reaching the adapters is checked against its definition (the
fraction of canvas positions drawn from noise) in training and at every step of ``generate``.
"""

from __future__ import annotations

import pytest
import torch
from transformers.models.diffusion_gemma import generation_diffusion_gemma as gen

from harness.ground.errors import BenchError
from harness.models.diffusion_gemma import base_model
from harness.models.loader import load_model
from harness.processes.masked.likelihood import LikelihoodConfig, estimate_loglikelihood
from harness.processes.masked.sampling import SamplerConfig
from harness.processes.masked.sampling import generate as masked_generate
from harness.processes.training import train_adapter
from harness.processes.uniform.forward import (
    UniformNoiseConfig,
    batch_logits,
    canvas_logits,
    corrupt,
    renoise,
)
from harness.processes.uniform.sampler import GemmaSamplingConfig, generate_canvas
from methods.registry import get_method, load_adapter
from tests.diffusion_gemma_models import (
    CANVAS,
    FIELDS,
    METHODS,
    PAIRS,
    VOCAB,
    build_diffusion_gemma,
    encoded_pairs,
    probe,
    probe_logits,
    train_config,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SAMPLING = GemmaSamplingConfig(
    max_new_tokens=2 * CANVAS,
    max_denoising_steps=4,
    entropy_bound=0.5,
    t_min=0.1,
    t_max=1.0,
    stability_threshold=2,
    confidence_threshold=0.01,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_diffusion_gemma(tmp_path_factory.mktemp("dgemma"))


def _record(dlm) -> list[list[float]]:
    seen = []
    dlm.channel.subscribe(lambda level: seen.append(level.tolist()))
    return seen


def test_loads_by_model_type_text_attention_targets_and_one_line_errors(folder, monkeypatch):
    dlm = load_model(str(folder), "cpu")
    assert dlm.info.family == "diffusion_gemma" and dlm.family.noise_process == "uniform"
    assert not dlm.tokenizer.has_mask_token
    prompt = dlm.tokenizer.encode_prompt("Hi")
    with pytest.raises(BenchError, match="no mask token"):  # the masked-diffusion sampler
        masked_generate(dlm, [prompt], SamplerConfig(gen_length=4, steps=4, block_length=4))
    with pytest.raises(BenchError, match="no mask token"):  # the masked-diffusion ELBO
        estimate_loglikelihood(dlm, prompt, [65], LikelihoodConfig(2, 2, seed=0))
    assert dlm.tokenizer.encode_prompt("Hi") == [258, ord("H"), ord("i")]  # <bos> first
    assert next(dlm.backbone.parameters()).dtype == torch.float32  # bf16 only on CUDA
    with pytest.raises(BenchError, match="uniform-noise block-diffusion"):
        dlm(torch.tensor([[65, 66]]), torch.ones(1))  # the masked-diffusion call
    method = get_method("lora")
    method.apply(dlm, method.config(rank=2))
    adapted = sorted(
        n.split("base_model.model.model.")[1]
        for n, m in dlm.backbone.named_modules()
        if hasattr(m, "lora_A") and not n.endswith(("lora_A", "lora_B"))
    )
    # layer 0 slides (q, k, v, o); layer 1 is full attention, whose keys are its values (no v)
    per_stack = [
        "layers.0.self_attn.k_proj",
        "layers.0.self_attn.o_proj",
        "layers.0.self_attn.q_proj",
        "layers.0.self_attn.v_proj",
        "layers.1.self_attn.k_proj",
        "layers.1.self_attn.o_proj",
        "layers.1.self_attn.q_proj",
    ]
    expected = sorted(
        [f"decoder.{n}" for n in per_stack] + [f"encoder.language_model.{n}" for n in per_stack]
    )
    assert adapted == expected  # nothing of the vision tower, the router or the experts

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(folder.parent / "empty-hf-home"))
    with pytest.raises(BenchError, match="google/diffusiongemma-26B-A4B-it") as err:
        load_model("diffusiongemma-26b-a4b-it", "cpu")
    assert "\n" not in str(err.value)


def test_nara_at_init_equals_lora_and_the_base(folder):
    base = probe_logits(load_model(str(folder), "cpu"))
    for name in ("lora", "nara"):
        dlm = load_model(str(folder), "cpu")
        method = get_method(name)
        torch.manual_seed(0)
        method.apply(dlm, method.config(rank=4, **FIELDS.get(name, {})))
        torch.testing.assert_close(probe_logits(dlm), base, rtol=0, atol=1e-6)


def test_training_levels_are_the_fraction_of_canvas_drawn_from_noise(folder):
    dlm = load_model(str(folder), "cpu")
    tok = dlm.tokenizer
    prompts = [tok.encode_prompt(p) for p, _ in PAIRS]
    answers = [tok.encode(a) for _, a in PAIRS]
    rate = torch.tensor([0.0, 0.3, 0.7, 1.0])
    batch = corrupt(prompts, answers, dlm, generator=torch.Generator().manual_seed(0), rate=rate)
    counted = torch.tensor([sum(row) / CANVAS for row in batch.drawn.tolist()])
    assert batch.level.tolist() == counted.tolist()
    assert batch.level[0] == 0 and batch.level[3] == 1
    assert torch.equal(batch.noisy[0], batch.target[0])  # nothing drawn: the clean canvas
    changed = batch.noisy != batch.target
    assert bool((changed <= batch.drawn).all())  # a token differs only where it was drawn
    # canvas = answer, EOS, EOS filling
    assert batch.target[0].tolist() == answers[0] + [tok.eos_token_id] * (CANVAS - len(answers[0]))

    seen = _record(dlm)
    with torch.no_grad():
        batch_logits(dlm, batch, UniformNoiseConfig(self_conditioning=1.0))
    zeros = [0.0] * len(PAIRS)
    level = batch.level.tolist()
    assert seen == [zeros, level, zeros, level]  # encoder at 0, decoder at the canvas level

    _, _, scheduled = renoise(batch.target, rate, VOCAB, UniformNoiseConfig(noise_level="schedule"))
    assert scheduled.tolist() == rate.tolist()  # the ablation feeds the corruption rate


@pytest.mark.parametrize("noise_level", ["drawn", "schedule"])
def test_generate_levels_follow_the_sampler_at_every_step(folder, monkeypatch, noise_level):
    dlm = load_model(str(folder), "cpu")
    model = base_model(dlm.backbone)
    accepted = []
    original = gen.EntropyBoundSampler.accept_canvas

    def logged(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        accepted.append(self.accepted_token_mask.clone())
        return out

    monkeypatch.setattr(gen.EntropyBoundSampler, "accept_canvas", logged)
    calls = []
    model.model.decoder.register_forward_pre_hook(lambda *_: calls.append(len(accepted)))
    encoder_calls = []
    model.model.encoder.register_forward_pre_hook(lambda *_: encoder_calls.append(len(calls)))
    seen = _record(dlm)
    tok = dlm.tokenizer
    prompts = [tok.encode_prompt("Q: 7+1="), tok.encode_prompt("Hi")]
    config = GemmaSamplingConfig(**{**SAMPLING.__dict__, "noise_level": noise_level})
    completions, stats = generate_canvas(dlm, prompts, config)

    decoder_levels = [lv for lv in seen if lv != [0.0, 0.0]]
    assert len(decoder_levels) == len(calls) == stats.decoder_forwards > 0
    starts = set(encoder_calls)  # decoder-call indices that open a new canvas
    steps = config.max_denoising_steps
    for i, level in enumerate(decoder_levels):
        if noise_level == "schedule":
            since = i - max(s for s in starts if s <= i)
            want = [(steps - since) / steps] * 2
        elif i in starts:
            want = [1.0, 1.0]
        else:
            want = (1.0 - accepted[calls[i] - 1].float().mean(dim=-1)).tolist()
        assert level == pytest.approx(want)
    assert len(stats.forwards_per_token) == 2 and all(f > 0 for f in stats.forwards_per_token)
    assert all(tok.eos_token_id not in c and len(c) <= config.max_new_tokens for c in completions)
    assert not hasattr(model.__dict__, "_prepare_sampler")  # the capture is undone


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_saves_reloads_and_samples(folder, method, tmp_path):
    dlm = load_model(str(folder), "cpu")
    tok = dlm.tokenizer
    data = encoded_pairs(dlm)
    torch.manual_seed(0)
    m = get_method(method)
    adapter = m.apply(dlm, m.config(rank=4, **FIELDS.get(method, {})))
    result = train_adapter(dlm, adapter, data, data[:2], train_config(), seed=0)
    assert len(result.curve) == 2 and result.val_bins and result.best_val_loss < 100
    expected = probe_logits(dlm)
    base = load_model(str(folder), "cpu")
    assert not torch.allclose(probe_logits(base), expected, atol=1e-6), "training did nothing"
    adapter.save(tmp_path / "adapter")
    load_adapter(base, tmp_path / "adapter")
    torch.testing.assert_close(probe_logits(base.eval()), expected, rtol=0, atol=1e-6)
    completions, stats = generate_canvas(base, [tok.encode_prompt("Q: 7+1=")], SAMPLING)
    assert len(completions) == 1 and stats.decoder_forwards > 0


def test_evaluation_uses_generate_and_refuses_loglik_in_one_line(folder):
    from harness.config.cell import EvalConfig
    from harness.processes.evaluation import evaluate
    from tasks.registry import get_task
    from tasks.sources import load_split

    dlm = load_model(str(folder), "cpu")  # its generation_config: 3 steps per canvas
    spec = get_task("synth_math")
    examples = load_split(spec, "test", limit=3).examples
    config = EvalConfig(gen_length=CANVAS, batch_size=2, template="plain")
    outcome = evaluate(dlm, spec, examples, config, steps=None, seed=0)
    stats = outcome.sampling
    assert outcome.sampler == "diffusion_gemma.generate(noise_level=drawn)"
    assert 0 < stats.forwards <= 2 * 3 and stats.row_forwards >= stats.forwards  # 2 batches
    assert stats.tokens > 0 and stats.forwards_per_token > 0

    choice = get_task("synth_choice")
    loglik = EvalConfig(protocol="loglik")
    with pytest.raises(BenchError, match="likelihood scoring is not supported") as err:
        evaluate(dlm, choice, load_split(choice, "test", limit=1).examples, loglik, None, 0)
    assert "\n" not in str(err.value)
    with pytest.raises(BenchError, match="valid: drawn"):
        evaluate(dlm, spec, examples, EvalConfig(noise_level="sequence"), None, 0)
    with pytest.raises(BenchError, match="eval.cache=prefix is a masked-diffusion"):
        evaluate(dlm, spec, examples, EvalConfig(cache="prefix"), None, 0)


def test_gradient_checkpointing_trains_the_same_nara(folder):
    params = []
    for checkpointing in (False, True):
        dlm = load_model(str(folder), "cpu")
        torch.manual_seed(0)
        m = get_method("nara")
        adapter = m.apply(dlm, m.config(rank=4, **FIELDS["nara"]))
        config = train_config(gradient_checkpointing=checkpointing)
        train_adapter(dlm, adapter, encoded_pairs(dlm), [], config, seed=0)
        params.append([p.detach().clone() for p in adapter.trainable_parameters()])
    for plain, checkpointed in zip(*params, strict=True):
        torch.testing.assert_close(plain, checkpointed, rtol=1e-5, atol=1e-6)
    calls = []
    layer = base_model(dlm.backbone).model.decoder.layers[0].self_attn.q_proj
    layer.register_forward_hook(lambda *_: calls.append(1))
    dlm.train()
    canvas_logits(dlm, *probe(dlm)).square().mean().backward()
    assert len(calls) == 2  # the decoder layer really ran again during backward
