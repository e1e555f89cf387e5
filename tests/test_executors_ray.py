"""The Ray executor on a local Ray instance (127.0.0.1, 2 CPUs, shared by this module): the same
predictions as the local executor, the base kept loaded per worker and restored exactly, and a
worker killed mid-cell that leaves every cell done exactly once."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter

import pytest

from harness.models.loader import load_model
from harness.run.executors.inprocess import InProcessExecutor
from harness.run.executors.model_cache import weights_checksum
from harness.run.executors.queue import read_events
from harness.run.runner import run_grid
from results.store import load_records
from tests.test_runner import quick_spec, requests_for

ray = pytest.importorskip("ray", reason="Ray is installed by `make test` (pip install -e .[ray])")


@pytest.fixture(scope="module")
def local_ray():
    from harness.run.executors.ray_cluster import start_local_ray

    before = os.environ.get("BENCH_CHECK_BASE")
    os.environ["BENCH_CHECK_BASE"] = "1"  # the actors inherit it: checksums in the records
    info = start_local_ray(num_cpus=2, num_gpus=0)
    try:
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
        assert info["gcs_address"].startswith("127.0.0.1:")
        assert ray.cluster_resources()["CPU"] == 2
        yield info
    finally:
        ray.shutdown()
        if before is None:
            os.environ.pop("BENCH_CHECK_BASE", None)
        else:
            os.environ["BENCH_CHECK_BASE"] = before


def predictions(out) -> dict:
    return {
        r.cell_id: ([row["prediction"] for s in r.scores for row in s.per_example], r.train_curve)
        for r in load_records([out])
    }


def test_ray_gives_the_local_executor_s_predictions_and_reuses_each_worker_s_base(
    local_ray, small_base, tmp_path, one_torch_thread
):
    from harness.run.executors.ray_cluster import RayExecutor

    spec = quick_spec(small_base, seeds=[0, 1])  # lora, nara x 2 seeds
    local = run_grid(
        requests_for(spec), tmp_path / "local", {"name": "t"}, InProcessExecutor("cpu", threads=1)
    )
    cluster = run_grid(requests_for(spec), tmp_path / "ray", {"name": "t"}, RayExecutor(workers=2))
    assert local.done == cluster.done == 4 and not cluster.failed
    assert predictions(tmp_path / "ray") == predictions(tmp_path / "local")

    fresh = weights_checksum(load_model(str(small_base), "cpu"))
    records = {r.cell_id: r for r in load_records([tmp_path / "ray"])}
    order = [e for e in read_events(tmp_path / "ray") if e["event"] == "start"]
    seen: set[str] = set()
    for event in order:  # a worker loads the base for its first cell only
        record = records[event["cell"]]
        placement = record.environment.placement
        assert placement["executor"] == "ray" and placement["node"] == "127.0.0.1"
        assert placement["worker"] == event["worker"] and placement["pid"] != os.getpid()
        assert placement["base_checksum"] == fresh  # every cell starts from the exact base
        if event["worker"] in seen:
            assert record.costs.model_load_s == 0.0
        else:
            assert record.costs.model_load_s > 0
        seen.add(event["worker"])
    assert len(seen) == 2


def test_a_ray_worker_killed_mid_cell_leaves_every_cell_done_exactly_once(
    local_ray, small_base, tmp_path
):
    from harness.run.executors.ray_cluster import RayExecutor

    out = tmp_path / "run"
    killed: list[int] = []

    def kill_a_worker_mid_cell() -> None:
        deadline = time.time() + 200
        while time.time() < deadline and not killed:
            for path in out.glob("cells/*/record.json"):
                try:
                    record = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                pid = record["environment"].get("placement", {}).get("pid")
                if record["status"] == "running" and pid:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_a_worker_mid_cell, daemon=True)
    watcher.start()
    spec = quick_spec(
        small_base,
        methods=["lora", "static_core", "nara"],
        set={"train.steps": [6], "train.val_examples": [4]},
    )
    summary = run_grid(requests_for(spec), out, {"name": "t"}, RayExecutor(workers=2))
    watcher.join()
    assert killed and summary.done == 3 and not summary.failed
    records = load_records([out])
    assert len(records) == 3 and {r.status for r in records} == {"done"}
    events = read_events(out)
    (died,) = [e for e in events if e["event"] == "worker-died"]
    assert Counter(e["cell"] for e in events if e["event"] == "done") == {
        r.cell_id: 1 for r in records
    }
    retried = next(r for r in records if r.cell_id == died["cell"]).environment.placement
    assert retried["attempt"] == 2 and retried["pid"] != killed[0]
    assert retried["worker"] != died["worker"]
