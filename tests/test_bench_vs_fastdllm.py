"""benchmarks/bench_vs_fastdllm.py at a tiny size: bench's sampler and Fast-dLLM's reference
functions (``../shared/fixtures/reference-code/samplers/fast-dllm-llada``, loaded at test time)
write the same tokens on the same random-weight LLaDA, where their rules agree: prefix and dual
cache, threshold and dual+threshold with one bench step per token; batch 1 and 2 (Fast-dLLM
decodes a batch one prompt at a time)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from tests.released_models import TEST_DEVICE, require_fixtures

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_vs_fastdllm.py"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _script():
    spec = importlib.util.spec_from_file_location("bench_vs_fastdllm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    problem = module.reference_available()
    if problem is not None:
        pytest.skip(problem)
    return module


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    require_fixtures()
    script = _script()
    folder = script.build_folder(tmp_path_factory.mktemp("fastdllm"), hidden=64, layers=2)
    return script, *script.load_pair(folder, TEST_DEVICE)


def test_bench_writes_fast_dllms_tokens_where_the_rules_agree(pair):
    script, dlm, reference, module = pair
    rows = script.compare(
        dlm,
        reference,
        module,
        list(script.SETTINGS),
        [1, 2],
        gen=16,
        block=8,
        steps=8,
        threshold=0.3,  # this tiny model's confidences: about half the steps commit several
        repeats=1,
        compile_reference=False,
        warmup=False,
        log=lambda line: None,
    )
    assert [(r.setting, r.batch) for r in rows] == [(s, b) for b in (1, 2) for s in script.SETTINGS]
    assert {r.setting: r.identical for r in rows if r.batch == 1} == dict.fromkeys(
        script.SETTINGS, 1.0
    )
    assert all(r.identical == 1.0 for r in rows)
    by = {(r.setting, r.batch): r for r in rows}
    # the same number of forwards on both sides, and the threshold really decodes in parallel
    assert all(r.bench_forwards == r.fastdllm_forwards for r in rows if r.batch == 1)
    assert by["threshold", 1].fastdllm_forwards < 16 and by["dual+threshold", 1].bench_forwards < 16
    assert by["prefix", 1].fastdllm_forwards == 8


def test_the_reference_import_leaves_the_released_llada_loadable(pair, released_folder):
    """Fast-dLLM's files register their classes for ``llada`` with transformers' Auto classes;
    a LLaDA folder loaded afterwards still gets the released classes."""
    from harness.models.loader import load_model

    _script().load_reference()
    dlm = load_model(str(released_folder("llada")), TEST_DEVICE)
    assert "fast" not in type(dlm.backbone).__module__.lower()
    assert "transformers_modules" in type(dlm.backbone).__module__
    with torch.no_grad():
        dlm(torch.tensor([[126080, 50, 51]], device=dlm.device), torch.zeros(1))
