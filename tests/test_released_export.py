"""Honest adapters on the released LLaDA and Dream code: stock peft refuses a static-core or NaRA
folder, and the folder ``bench export`` writes loads with stock peft over the released model to
bench's logits (static core at every level, NaRA at the exported level)."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel

from harness.models.dlm import DiffusionLM
from harness.models.loader import load_model
from methods.export import export_adapter
from methods.registry import load_adapter
from tests.test_released_methods import _probe, _train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("family", ["llada", "dream"])
@pytest.mark.parametrize(("method", "level"), [("static_core", None), ("nara", 0.4)])
def test_export_on_released_code(family, method, level, released_folder, tmp_path):
    folder = released_folder(family)
    dlm, adapter = _train(folder, method)
    adapter.save(tmp_path / "adapter")
    with pytest.raises(KeyError, match="methods.load_adapter"):
        PeftModel.from_pretrained(
            load_model(str(folder), "cpu").backbone, str(tmp_path / "adapter")
        )
    export_adapter(tmp_path / "adapter", tmp_path / "plain", level)
    x = _probe(dlm)
    levels = (
        [torch.tensor([0.2, 0.9]), torch.zeros(2)] if level is None else [torch.full((2,), level)]
    )
    plain = load_model(str(folder), "cpu")
    with torch.no_grad():
        stock = PeftModel.from_pretrained(plain.backbone, str(tmp_path / "plain")).eval()
        got = DiffusionLM(stock, plain.tokenizer, plain.info)(x, levels[0])
        bench = load_model(str(folder), "cpu")
        load_adapter(bench, tmp_path / "adapter")
        bench.eval()
        for t in levels:
            torch.testing.assert_close(got, bench(x, t), rtol=0, atol=1e-5)
