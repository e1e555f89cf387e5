import pytest
import torch

from harness.ground.errors import BenchError
from harness.processes.masked.sampling import SamplerConfig, generate, transfer_counts
from tests.conftest import LevelRecorder


class InputRecorder:
    """Forward pre-hook on the backbone: keeps every input the sampler sends."""

    def __init__(self, dlm):
        self.inputs = []
        dlm.backbone.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        self.inputs.append(kwargs["input_ids"].clone())


PROMPTS = [[10, 11, 12, 13, 14, 15], [20, 21], [30, 31, 32, 33]]


def test_no_masks_left_and_committed_tokens_never_change(tiny_dlm):
    rec = InputRecorder(tiny_dlm)
    cfg = SamplerConfig(gen_length=16, steps=8, block_length=8, stop_at_eos=False)
    out = generate(tiny_dlm, PROMPTS, cfg)
    assert all(len(o) <= 16 for o in out)
    mask = tiny_dlm.mask_id
    for before, after in zip(rec.inputs, rec.inputs[1:], strict=False):
        kept = before != mask
        assert torch.equal(after[kept], before[kept])
    assert len(rec.inputs) == 8
    # the final state (last input plus the last commit) has no mask: redo the last commit check
    full = generate(tiny_dlm, PROMPTS, cfg)
    assert all(mask not in o for o in full)


def test_steps_equal_to_length_commit_one_token_per_step(tiny_dlm):
    rec = InputRecorder(tiny_dlm)
    cfg = SamplerConfig(gen_length=12, steps=12, block_length=4, stop_at_eos=False)
    generate(tiny_dlm, PROMPTS, cfg)
    counts = [int((x == tiny_dlm.mask_id).sum(dim=1)[0]) for x in rec.inputs]
    assert counts == list(range(12, 0, -1))


def test_batched_equals_one_by_one_at_temperature_zero(tiny_dlm):
    cfg = SamplerConfig(gen_length=16, steps=16, block_length=8)
    together = generate(tiny_dlm, PROMPTS, cfg)
    alone = [generate(tiny_dlm, [p], cfg)[0] for p in PROMPTS]
    assert together == alone


def test_noise_level_is_the_masked_fraction_of_each_response(tiny_dlm):
    levels = LevelRecorder(tiny_dlm)
    cfg = SamplerConfig(gen_length=8, steps=8, block_length=8, stop_at_eos=False)
    generate(tiny_dlm, PROMPTS, cfg)
    assert [round(float(v[0]), 4) for v in levels.levels] == [
        round(k / 8, 4) for k in range(8, 0, -1)
    ]
    assert all(v.shape == (3,) for v in levels.levels)


def test_sequence_noise_level_counts_the_prompt_but_not_padding(tiny_dlm):
    levels = LevelRecorder(tiny_dlm)
    cfg = SamplerConfig(
        gen_length=8, steps=8, block_length=8, noise_level="sequence", stop_at_eos=False
    )
    generate(tiny_dlm, PROMPTS, cfg)
    first = levels.levels[0]
    assert torch.allclose(first, torch.tensor([8 / 14, 8 / 10, 8 / 12]))


def test_stop_at_eos_cuts_output_and_retires_rows():
    from tests.conftest import make_tiny_dlm

    dlm = make_tiny_dlm()
    eos = dlm.tokenizer.eos_token_id
    with torch.no_grad():
        dlm.backbone.lm_head.weight.zero_()
        dlm.backbone.lm_head.weight[eos].fill_(0.0)
        dlm.backbone.norm.weight.zero_()
    # all logits equal: argmax picks token 0 (pad); force EOS by biasing the head
    dlm.backbone.lm_head.bias = torch.nn.Parameter(torch.zeros(dlm.tokenizer.vocab_size))
    with torch.no_grad():
        dlm.backbone.lm_head.bias[eos] = 5.0
    rec = InputRecorder(dlm)
    out = generate(dlm, PROMPTS, SamplerConfig(gen_length=16, steps=16, block_length=4))
    assert out == [[], [], []]
    assert len(rec.inputs) == 4  # only the first block ran


@pytest.mark.parametrize("schedule", ["linear", "cosine", "cosmap"])
def test_schedules_commit_the_whole_block(schedule):
    counts = transfer_counts(32, 8, schedule)
    assert sum(counts) == 32 and len(counts) == 8 and min(counts) >= 0


def test_classifier_free_guidance_and_random_remasking_run(tiny_dlm):
    cfg = SamplerConfig(
        gen_length=8, steps=4, block_length=4, cfg_scale=1.0, remasking="random", temperature=0.7
    )
    out = generate(tiny_dlm, PROMPTS, cfg, generator=torch.Generator().manual_seed(0))
    assert len(out) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"gen_length": 10, "block_length": 4}, "not divisible"),
        ({"gen_length": 16, "block_length": 4, "steps": 2}, "fewer than the number of blocks"),
        ({"remasking": "best"}, "low_confidence, random"),
        ({"schedule": "exp"}, "linear, cosine, cosmap"),
    ],
)
def test_bad_sampler_settings_fail_clearly(kwargs, message):
    with pytest.raises(BenchError, match=message):
        SamplerConfig(**kwargs)
