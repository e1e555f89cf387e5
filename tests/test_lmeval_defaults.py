"""The lm-eval path samples like bench's own evaluation: the suite's block length by default,
and the ``noise_level`` setting (response | sequence) as a model argument."""

from __future__ import annotations

import pytest
import torch
from lm_eval.api.instance import Instance

from harness.config.cell import default_eval
from harness.ground.errors import BenchError
from harness.lmeval import BenchDLLM, lm_eval_suite
from harness.models.dlm import DiffusionLM, ModelInfo
from tests.conftest import LevelRecorder, make_tiny_dlm

ARGS = {"gen_length": 8, "steps": 8, "batch_size": 2}


def _named(name: str) -> DiffusionLM:
    """A tiny random model that reports ``name``: defaults are chosen by the model's name."""
    dlm = make_tiny_dlm()
    return DiffusionLM(dlm.backbone, dlm.tokenizer, ModelInfo(name, "llada", "test"))


def _generate(task: str) -> Instance:
    return Instance("generate_until", doc={}, arguments=("Q: 1+1\nA:", {"until": []}),
                    idx=0, metadata=(task, 0, 1))  # fmt: skip


@pytest.mark.parametrize(
    ("task", "suite"),
    [("gsm8k", "math"), ("gsm8k_cot", "math"), ("minerva_math_algebra", "math"),
     ("humaneval", "code"), ("mbpp_plus", "code"), ("arc_easy", "commonsense"),
     ("hellaswag", "commonsense"), ("synth_math", "synthetic"), ("boolq", "commonsense")],
)  # fmt: skip
def test_lm_eval_tasks_map_to_bench_suites(task, suite):
    assert lm_eval_suite(task) == suite


@pytest.mark.parametrize("model", ["llada-8b-instruct", "tiny"])
def test_default_block_length_is_bench_evaluations_for_the_suite(model):
    lm = BenchDLLM(dlm=_named(model), **ARGS)
    for task, suite in (("gsm8k", "math"), ("humaneval", "code"), ("arc_easy", "commonsense"),
                        ("synth_math", "synthetic")):  # fmt: skip
        assert lm.block_length_for(task) == default_eval(model, suite).block_length
    if model == "llada-8b-instruct":  # the release's values
        assert lm.block_length_for("gsm8k") == 8 and lm.block_length_for("humaneval") == 32
    assert BenchDLLM(dlm=_named(model), block_length=2, **ARGS).block_length_for("humaneval") == 2


def test_generation_uses_the_task_block_and_records_it():
    lm = BenchDLLM(dlm=_named("tiny"), **ARGS)
    lm.generate_until([_generate("synth_math"), _generate("gsm8k")])
    assert lm.blocks_used == {"synth_math": {4}, "gsm8k": {8}}
    assert lm._sampler_for({}, 4).block_length == 4
    assert lm._sampler_for({"max_gen_toks": 5}, 4).gen_length == 8


@pytest.mark.parametrize("noise_level", ["response", "sequence"])
def test_noise_level_model_argument_reaches_the_sampler(noise_level):
    dlm = make_tiny_dlm()
    lm = BenchDLLM(dlm=dlm, block_length=8, noise_level=noise_level, **ARGS)
    recorder = LevelRecorder(dlm)
    prompt = dlm.tokenizer.encode("Q: 1+1\nA:")
    lm.generate_until([_generate("synth_math")])
    first = recorder.levels[0]
    expected = 1.0 if noise_level == "response" else 8 / (len(prompt) + 8)
    torch.testing.assert_close(first, torch.tensor([expected]))


def test_bad_noise_level_is_one_clear_error():
    with pytest.raises(BenchError, match="noise_level 'middle' is not one of: response, sequence"):
        BenchDLLM(dlm=make_tiny_dlm(), noise_level="middle", **ARGS)
