"""A worker's base-model cache: a second cell reuses the base, and starts from exactly the weights
a fresh load gives (checksum), whatever method the first cell trained; a cell that changes the
base in any way makes the worker load it again."""

from __future__ import annotations

import pytest
import torch

from harness.models.loader import load_model
from harness.run.executors.model_cache import BaseModelCache, weights_checksum
from methods.registry import get_method


@pytest.fixture(scope="module")
def fresh_checksum(small_base):
    return weights_checksum(load_model(str(small_base), "cpu"))


def train_a_little(dlm, method: str) -> None:
    """What a cell does to its model: apply, train (the adapter moves), evaluate mode."""
    m = get_method(method)
    config = m.config_cls.from_dict({} if method == "base" else {"rank": 4})
    adapter = m.apply(dlm, config)
    params = adapter.trainable_parameters()
    dlm.train()
    if params:
        opt = torch.optim.SGD(params, lr=0.5)
        ids = torch.randint(0, 20, (2, 12))
        loss = dlm(ids, torch.full((2,), 0.5)).float().pow(2).mean()
        loss.backward()
        opt.step()
    dlm.eval()


@pytest.mark.parametrize("method", ["lora", "dora", "static_core", "nara", "base"])
def test_second_cell_reuses_the_base_and_starts_from_its_exact_weights(
    small_base, fresh_checksum, method, one_torch_thread
):
    cache = BaseModelCache(check=True)
    first = cache.checkout(str(small_base), "cpu")
    assert cache.last_load_s > 0 and cache.last_checksum == fresh_checksum
    train_a_little(first, method)
    cache.release(ok=True)
    second = cache.checkout(str(small_base), "cpu")
    assert second is first and cache.last_load_s == 0.0 and cache.loads == 1
    assert not cache.dropped
    assert weights_checksum(second) == fresh_checksum
    assert type(second.backbone).__name__ == "TinyDLLM" and not second.channel._subscribers
    get_method("lora").apply(second, get_method("lora").config_cls.from_dict({"rank": 2}))


def test_a_cell_that_changes_the_base_weights_makes_the_worker_reload(
    small_base, fresh_checksum, one_torch_thread
):
    cache = BaseModelCache(check=True)
    dlm = cache.checkout(str(small_base), "cpu")
    with torch.no_grad():
        next(dlm.backbone.parameters()).add_(1e-3)  # e.g. a merge that was never undone
    cache.release(ok=True)
    assert cache.dropped == ["its weights changed (checksum)"]
    again = cache.checkout(str(small_base), "cpu")
    assert again is not dlm and cache.loads == 2 and cache.last_load_s > 0
    assert weights_checksum(again) == fresh_checksum


def test_a_hook_left_behind_or_a_failed_cell_makes_the_worker_reload(small_base):
    cache = BaseModelCache(check=False)  # the structure check runs without check mode too
    dlm = cache.checkout(str(small_base), "cpu")
    dlm.backbone.register_forward_hook(lambda *a: None)
    cache.release(ok=True)
    assert cache.dropped and "structure" in cache.dropped[0]
    cache.checkout(str(small_base), "cpu")
    cache.release(ok=False)
    assert cache.dropped[-1] == "the cell failed" and cache.holds is None


@pytest.mark.parametrize("method", ["lora", "nara"])
def test_the_released_llada_base_is_reused_exactly(llada_folder, method, one_torch_thread):
    fresh = weights_checksum(load_model(str(llada_folder), "cpu"))
    cache = BaseModelCache(check=True)
    first = cache.checkout(str(llada_folder), "cpu")
    m = get_method(method)
    adapter = m.apply(first, m.config_cls.from_dict({"rank": 2}))
    opt = torch.optim.SGD(adapter.trainable_parameters(), lr=0.5)
    first(torch.randint(0, 100, (2, 8)), torch.full((2,), 0.5)).float().pow(2).mean().backward()
    opt.step()
    cache.release(ok=True)
    second = cache.checkout(str(llada_folder), "cpu")
    assert second is first and cache.last_load_s == 0.0 and not cache.dropped
    assert weights_checksum(second) == fresh


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_a_causal_base_is_restored_for_the_next_cell(method):
    """Its channel is a read-only view of its flow time: restoring must not try to assign it
    (a worker would then drop and reload the causal base after every cell)."""
    from harness.models.causal import CausalLM
    from harness.run.executors.model_cache import restore_base
    from tests.causal_models import make_causal_lm

    dlm = make_causal_lm()
    m = get_method(method)
    m.apply(dlm, m.config_cls.from_dict({"rank": 2}))
    old_channel = dlm.channel
    restore_base(dlm)
    assert dlm.channel is not old_channel and "_bench_adapter" not in vars(dlm)
    assert isinstance(dlm, CausalLM) and type(dlm.backbone).__name__.endswith("ForCausalLM")


@pytest.mark.parametrize(
    ("value", "expected"), [("1", 1), ("3", 3), ("", None), ("0", None), ("two", None)]
)
def test_the_in_process_worker_takes_omp_num_threads_when_it_is_set(monkeypatch, value, expected):
    import os

    from harness.run.executors.inprocess import InProcessExecutor

    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert InProcessExecutor("cpu").threads == (expected or os.cpu_count())
    assert InProcessExecutor("cpu", threads=2).threads == 2
