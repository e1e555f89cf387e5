"""Method registry, configs, scaling conventions and target-module resolution."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.ground.errors import BenchError
from harness.models.dlm import DiffusionLM, ModelInfo
from harness.models.registry import get_family
from harness.models.tiny import TinyDLLM, TinyDLLMConfig
from harness.models.tokenizer import CharTokenizer
from methods import NaraConfig, get_method, list_methods
from methods.nara import hypernetwork_parameter_count
from methods.targets import resolve_targets


def make_dlm(seed: int = 0) -> DiffusionLM:
    torch.manual_seed(seed)
    config = TinyDLLMConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    return DiffusionLM(TinyDLLM(config), CharTokenizer(), ModelInfo("tiny", "tiny", "test"))


def test_registry_has_the_base_row_and_the_four_methods():
    names = [row.name for row in list_methods()]
    assert names[:5] == ["base", "lora", "dora", "static_core", "nara"]
    assert "l2d" in names  # the autoregressive-base method (tests/test_l2d.py)
    assert "binned_lora" in names and "rank_one_lora" in names
    assert not get_method("base").trains and all(get_method(n).trains for n in names[1:])


def test_unknown_method_lists_valid_ones():
    with pytest.raises(BenchError, match="valid methods are base, lora, dora, static_core, nara"):
        get_method("loha")


def test_list_methods_reports_fields_and_defaults():
    rows = {row.name: row for row in list_methods()}
    nara = {f.name: f.default for f in rows["nara"].fields}
    assert nara["c_scale"] == 0.1
    assert nara["hidden_sizes"] == (256, 512)
    assert nara["embedding"] == "fourier"
    assert nara["rank"] == 32 and nara["dropout"] == 0.05
    assert rows["nara"].noise_aware and not rows["lora"].noise_aware
    assert "c_scale" in {f.name for f in rows["static_core"].fields}
    assert "c_scale" not in {f.name for f in rows["lora"].fields}


@pytest.mark.parametrize(
    ("method", "fields", "message"),
    [
        ("lora", {"rank": 0}, "rank must be a positive integer"),
        ("dora", {"rank": -4}, "rank must be a positive integer"),
        ("lora", {"scaling": "sqrt"}, "scaling must be one of alpha_over_r, one"),
        ("lora", {"scaling": "one", "alpha": 16}, "alpha is only used"),
        ("lora", {"dropout": 1.0}, "dropout"),
        ("lora", {"target_modules": []}, "target_modules"),
        ("lora", {"rnak": 8}, "unknown field.*rnak.*valid fields"),
        ("static_core", {"c_scale": 0.0}, "c_scale must be a positive"),
        ("static_core", {"core_sharing": "per_head"}, "core_sharing"),
        ("nara", {"c_scale": -0.1}, "c_scale must be a positive"),
        ("nara", {"hidden_sizes": (256, 0)}, "hidden_sizes must be positive"),
        ("nara", {"hidden_sizes": [-1]}, "hidden_sizes must be positive"),
        ("nara", {"embedding": "sinusoid"}, "embedding must be one of fourier, mlp, raw"),
        ("nara", {"conditioning": "time"}, "conditioning must be one of"),
        ("nara", {"fourier_features": 0}, "fourier_features"),
        ("nara", {"stage1_fraction": 1.0}, "stage1_fraction"),
    ],
)
def test_bad_configs_raise_bench_error(method, fields, message):
    with pytest.raises(BenchError, match=message):
        get_method(method).config(**fields)


def test_config_dataclass_validates_on_construction():
    with pytest.raises(BenchError):
        NaraConfig(rank=0)
    assert NaraConfig(hidden_sizes=[8, 16]).hidden_sizes == (8, 16)


def test_config_round_trips_through_dict():
    config = NaraConfig(rank=8, hidden_sizes=(16,), target_modules=("q_proj", "v_proj"))
    assert NaraConfig.from_dict(config.to_dict()) == config


def test_wrong_config_type_is_refused():
    with pytest.raises(BenchError, match="takes a NaraConfig"):
        get_method("nara").apply(make_dlm(), get_method("lora").config(rank=4))


@pytest.mark.parametrize(
    ("fields", "scale"),
    [({"rank": 8}, 1.0), ({"rank": 8, "alpha": 16}, 2.0), ({"rank": 8, "scaling": "one"}, 1.0)],
)
@pytest.mark.parametrize("method", ["lora", "dora", "static_core", "nara"])
def test_scaling_convention_reaches_peft(method, fields, scale):
    m = get_method(method)
    config = m.config(**fields, hidden_sizes=(8,)) if method == "nara" else m.config(**fields)
    assert config.scale == scale
    dlm = make_dlm()
    m.apply(dlm, config)
    layer = dlm.backbone.base_model.model.layers[0].self_attn.q_proj
    assert layer.scaling["default"] == scale


def test_hypernetwork_has_673536_parameters_at_rank_32():
    assert hypernetwork_parameter_count(NaraConfig(rank=32)) == 673_536
    assert hypernetwork_parameter_count(NaraConfig(rank=32, embedding="raw")) == 673_536 - 63 * 256


def test_parameter_counts():
    dlm = make_dlm()
    base_total = sum(p.numel() for p in dlm.parameters())
    adapter = get_method("nara").apply(dlm, NaraConfig(rank=4, hidden_sizes=(8,)))
    counts = adapter.parameter_counts()
    lora = 2 * 4 * 4 * (32 + 32)  # 2 layers x q,k,v,o x (A + B)
    hyper = (64 * 8 + 8) + (8 * 16 + 16)
    assert counts.adapter == counts.trainable == lora + hyper
    assert counts.total == base_total + lora + hyper


def test_apply_twice_is_refused():
    dlm = make_dlm()
    get_method("lora").apply(dlm, get_method("lora").config(rank=4))
    with pytest.raises(BenchError, match="already carries an adapter"):
        get_method("nara").apply(dlm, NaraConfig(rank=4, hidden_sizes=(8,)))


# --- target modules ---------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self, names: list[str]) -> None:
        super().__init__()
        for name in names:
            self.add_module(name, nn.Linear(8, 8, bias=False))


class LladaStandIn(nn.Module):
    """LLaDA's module names: model.transformer.blocks.N.*, output head model.transformer.ff_out."""

    def __init__(self) -> None:
        super().__init__()
        names = ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"]
        transformer = nn.Module()
        transformer.blocks = nn.ModuleList(Block(names) for _ in range(2))
        transformer.ff_out = nn.Linear(8, 100, bias=False)
        self.model = nn.Module()
        self.model.transformer = transformer

    def get_output_embeddings(self) -> nn.Module:
        return self.model.transformer.ff_out


class DreamStandIn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Module()
        layers = []
        for _ in range(2):
            layer = nn.Module()
            layer.self_attn = Block(["q_proj", "k_proj", "v_proj", "o_proj"])
            layer.mlp = Block(["gate_proj", "up_proj", "down_proj"])
            layers.append(layer)
        self.model.layers = nn.ModuleList(layers)
        self.lm_head = nn.Linear(8, 100, bias=False)


def test_targets_resolve_for_tiny():
    resolved = resolve_targets(make_dlm().backbone, get_family("tiny"))
    assert len(resolved) == 8
    assert resolved["layers.1.self_attn.o_proj"] == "o_proj"


def test_targets_resolve_for_llada_names():
    model = LladaStandIn()
    resolved = resolve_targets(model, get_family("llada"))
    assert sorted(resolved) == sorted(
        f"model.transformer.blocks.{i}.{n}"
        for i in range(2)
        for n in ("q_proj", "k_proj", "v_proj", "attn_out")
    )
    mlp = resolve_targets(model, get_family("llada"), get_family("llada").mlp_targets)
    assert "model.transformer.ff_out" not in mlp  # the output head is left out
    assert "model.transformer.blocks.1.ff_out" in mlp and len(mlp) == 6


def test_targets_resolve_for_dream_names():
    resolved = resolve_targets(DreamStandIn(), get_family("dream"))
    assert set(resolved.values()) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert len(resolved) == 8
    overridden = resolve_targets(DreamStandIn(), get_family("dream"), ["down_proj"])
    assert sorted(overridden) == ["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"]


def test_unknown_target_fails_loudly_naming_what_exists():
    with pytest.raises(BenchError) as err:
        resolve_targets(DreamStandIn(), get_family("dream"), ["q_proj", "attn_out", "wq"])
    message = str(err.value)
    assert "attn_out, wq not found" in message
    assert "down_proj" in message and "o_proj" in message and "q_proj" in message


def test_apply_with_unknown_target_fails_before_touching_the_model():
    dlm = make_dlm()
    backbone = dlm.backbone
    config = get_method("nara").config(rank=4, target_modules=("attn_out",))
    with pytest.raises(BenchError, match="attn_out not found"):
        get_method("nara").apply(dlm, config)
    assert dlm.backbone is backbone
