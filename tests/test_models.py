"""The loader: tiny round trip, local remote-code folders (LLaDA- and Dream-like), bad names."""

import json
import textwrap

import pytest
import torch

from harness.ground.errors import BenchError
from harness.models.loader import load_model
from tests.conftest import make_tiny_dlm

MODELING = textwrap.dedent(
    """
    import torch
    from torch import nn
    from transformers import PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutput

    class FakeConfig(PretrainedConfig):
        model_type = "{model_type}"
        def __init__(self, vocab_size=16, d_model=8, **kw):
            self.vocab_size, self.d_model = vocab_size, d_model
            super().__init__(**kw)

    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.q_proj, self.k_proj, self.v_proj = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
            self.attn_out = nn.Linear(d, d)
            self.ff_proj, self.up_proj, self.ff_out = nn.Linear(d, 2 * d), nn.Linear(d, 2 * d), nn.Linear(2 * d, d)
        def forward(self, x):
            x = x + self.attn_out(self.v_proj(x) * torch.sigmoid(self.q_proj(x) + self.k_proj(x)))
            return x + self.ff_out(torch.relu(self.ff_proj(x)) * self.up_proj(x))

    class FakeModel(PreTrainedModel):
        config_class = FakeConfig
        def __init__(self, config):
            super().__init__(config)
            self.wte = nn.Embedding(config.vocab_size, config.d_model)
            self.blocks = nn.ModuleList([Block(config.d_model)])
            self.head = nn.Linear(config.d_model, config.vocab_size)
            self.post_init()
        def _init_weights(self, module):
            pass
        def forward(self, input_ids, attention_mask=None, **kw):
            x = self.wte(input_ids)
            for b in self.blocks:
                x = b(x)
            return CausalLMOutput(logits=self.head(x))
    """
)


def write_remote_code_folder(folder, model_type: str):
    from tokenizers import Tokenizer, models
    from transformers import AutoConfig, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"modeling_{model_type}.py").write_text(MODELING.replace("{model_type}", model_type))
    vocab = {
        w: i for i, w in enumerate(["<pad>", "<eos>", "<|mdm_mask|>", "<unk>", *"abcdefghijkl"])
    }
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
        pad_token="<pad>",
        eos_token="<eos>",
        mask_token="<|mdm_mask|>",
        unk_token="<unk>",
    )
    tok.save_pretrained(folder)
    config = {
        "model_type": model_type,
        "architectures": ["FakeModel"],
        "vocab_size": 16,
        "d_model": 8,
        "auto_map": {
            "AutoConfig": f"modeling_{model_type}.FakeConfig",
            "AutoModel": f"modeling_{model_type}.FakeModel",
        },
    }
    (folder / "config.json").write_text(json.dumps(config))
    # weights: instantiate through the remote code and save next to it
    cfg = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    from transformers import AutoModel

    model = AutoModel.from_config(cfg, trust_remote_code=True)
    model.save_pretrained(folder)
    return folder


def test_tiny_save_load_round_trip_gives_identical_logits(tmp_path):
    dlm = make_tiny_dlm(seed=1)
    dlm.backbone.save_pretrained(tmp_path)
    dlm.tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path), device="cpu")
    assert loaded.info.family == "tiny"
    x = torch.tensor([[10, 11, 2, 2, 12]])
    level = torch.tensor([0.4])
    with torch.no_grad():
        assert torch.equal(dlm(x, level), loaded(x, level))


# LLaDA / Dream folders are tested with their released code in tests/test_released_*.py.


def test_tokenizer_without_mask_token_fails_clearly(tmp_path):
    folder = write_remote_code_folder(tmp_path / "generic", "plainlm")
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg.pop("mask_token", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    special = folder / "special_tokens_map.json"
    if special.exists():
        data = json.loads(special.read_text())
        data.pop("mask_token", None)
        special.write_text(json.dumps(data))
    with pytest.raises(BenchError, match="no mask token"):
        load_model(str(folder), device="cpu")


@pytest.mark.parametrize("name", ["llama-unknown", "/no/such/folder"])
def test_unknown_alias_or_missing_folder_fails_with_valid_names(name):
    with pytest.raises(BenchError, match="valid: tiny, llada-8b-instruct"):
        load_model(name, device="cpu")


def test_hub_alias_offline_fails_with_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(BenchError, match="not in the local Hugging Face cache") as err:
        load_model("llada-8b-instruct", device="cpu")
    assert "\n" not in str(err.value) and "--model tiny" in str(err.value)


def test_two_models_do_not_share_noise_levels():
    a, b = make_tiny_dlm(seed=0), make_tiny_dlm(seed=1)
    ids = torch.tensor([[10, 2, 2]])
    a(ids, torch.tensor([0.25]))
    b(ids, torch.tensor([0.75]))
    assert a.channel.level.tolist() == [0.25] and b.channel.level.tolist() == [0.75]


def test_noise_level_survives_gradient_checkpointing_recompute():
    dlm = make_tiny_dlm()
    dlm.backbone.activation_checkpointing_enable(
        activation_checkpointing_kwargs={"use_reentrant": False}
    )
    dlm.backbone.train()
    seen = []
    dlm.backbone.layers[0].self_attn.q_proj.register_forward_hook(
        lambda *_: seen.append(dlm.channel.level.clone())
    )
    level = torch.tensor([0.1, 0.9])
    logits = dlm(torch.tensor([[10, 2, 11], [12, 2, 2]]), level)
    logits.sum().backward()
    assert len(seen) == 2  # the forward and its recomputation during backward
    assert all(torch.equal(s, level) for s in seen)


def test_device_validation():
    from harness.models.loader import resolve_device

    with pytest.raises(BenchError, match="auto, cpu, cuda"):
        resolve_device("tpu-ish")
