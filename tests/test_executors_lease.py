"""Per-cell leases and the driver's queue: two runs on one folder run each cell once, a stale
lease is taken over, a local worker killed mid-cell is retried, and `--executor ray` without Ray
says how to install it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

from harness.run.executors.lease import LeaseBook, read_lease
from harness.run.executors.queue import read_events
from results.store import load_records
from tests.test_runner import ROOT, quick_spec, requests_for, run_cli


def test_a_lease_is_exclusive_until_released(tmp_path):
    a, b = LeaseBook(tmp_path), LeaseBook(tmp_path)
    assert a.take("cell") is None
    holder = b.take("cell")
    assert holder is not None and holder.owner == a.token and holder.pid == os.getpid()
    assert a.take("cell") is None  # taking one's own lease again is fine
    a.release("cell")
    assert b.take("cell") is None and read_lease(b.path("cell")).owner == b.token


def test_a_lease_whose_owner_was_killed_is_taken_over(tmp_path):
    code = (
        "import sys, time; from harness.run.executors.lease import LeaseBook; "
        f"book = LeaseBook({str(tmp_path)!r}, stale_s=1.2).start(); book.take('cell'); "
        "print('held', flush=True); time.sleep(600)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    try:
        assert owner.stdout.readline().strip() == b"held"
        book = LeaseBook(tmp_path, stale_s=3600, death_margin_s=0.5)
        assert book.take("cell") is not None  # a live owner keeps its lease
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        killed = time.time()
        while book.take("cell") is not None:  # dead owner on this host: taken after the grace
            time.sleep(0.05)
        assert 0.3 < time.time() - killed < 60 and read_lease(book.path("cell")).pid == os.getpid()
        assert read_lease(book.path("cell")).owner == book.token
    finally:
        owner.kill()


def test_a_lease_from_another_host_is_stale_only_when_its_heartbeat_is_old(tmp_path):
    book = LeaseBook(tmp_path, stale_s=60)
    path = book.path("cell")
    path.write_text(json.dumps({"owner": "x" * 32, "host": "elsewhere", "pid": 1, "boot": "b"}))
    assert book.take("cell") is not None  # fresh heartbeat: left alone
    old = time.time() - 120
    os.utime(path, (old, old))
    assert book.take("cell") is None and read_lease(path).owner == book.token
    assert not list(book.folder.glob(".*stale*"))


def test_the_heartbeat_keeps_a_held_lease_fresh(tmp_path):
    book = LeaseBook(tmp_path, stale_s=0.6).start()
    try:
        book.take("cell")
        old = time.time() - 100
        os.utime(book.path("cell"), (old, old))
        time.sleep(0.4)
        assert read_lease(book.path("cell")).age_s < 1
    finally:
        book.close()
    assert not book.path("cell").exists()  # released on close


def test_two_bench_runs_started_together_on_one_folder_run_each_cell_once(small_base, tmp_path):
    out = tmp_path / "run"
    args = [
        sys.executable, "-m", "harness", "run", "--model", str(small_base),
        "--methods", "lora,nara", "--tasks", "synth_choice", "--seeds", "0,1",
        "--limit", "2", "--steps", "4", "--set", "train.steps=2", "--set", "train.val_examples=2",
        "--out", str(out), "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    records = load_records([out])
    assert len(records) == 4 and {r.status for r in records} == {"done"}
    events = read_events(out)
    starts = Counter(e["cell"] for e in events if e["event"] == "start")
    dones = Counter(e["cell"] for e in events if e["event"] == "done")
    assert set(starts.values()) == {1} and set(dones.values()) == {1} and len(starts) == 4
    assert not list((out / "leases").iterdir())


def test_a_local_worker_killed_mid_cell_is_retried_on_another_worker(small_base, tmp_path):
    from harness.run.executors.local import LocalProcessExecutor
    from harness.run.runner import run_grid

    out = tmp_path / "run"
    killed: list[int] = []

    def kill_the_first_worker_seen_running() -> None:
        deadline = time.time() + 200
        while time.time() < deadline and not killed:
            for path in out.glob("cells/*/record.json"):
                try:
                    record = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                pid = record["environment"].get("placement", {}).get("pid")
                if record["status"] == "running" and pid and pid != os.getpid():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_the_first_worker_seen_running, daemon=True)
    watcher.start()
    spec = quick_spec(small_base, seeds=[0], set={"train.steps": [6], "train.val_examples": [4]})
    summary = run_grid(requests_for(spec), out, {"name": "t"}, LocalProcessExecutor(["cpu", "cpu"]))
    watcher.join()
    assert killed and summary.done == 2 and not summary.failed
    records = load_records([out])
    assert {r.status for r in records} == {"done"}
    events = read_events(out)
    died = [e for e in events if e["event"] == "worker-died"]
    assert len(died) == 1
    retried = next(r for r in records if r.cell_id == died[0]["cell"])
    placement = retried.environment.placement
    assert placement["attempt"] == 2 and placement["pid"] != killed[0]
    assert placement["worker"] != died[0]["worker"]
    from harness.run.executors.local import worker_threads

    # every cell knows the threads of the whole run on this host (both workers), for the load
    assert {r.costs.run_threads for r in records} == {2 * worker_threads(["cpu", "cpu"], "cpu")}
    assert Counter(e["cell"] for e in events if e["event"] == "done") == {
        r.cell_id: 1 for r in records
    }


def test_executor_ray_without_ray_installed_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code, _, err = run_cli(["run", "--executor", "ray", "--dry-run"], monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == ["error: --executor ray needs Ray: pip install -e .[ray]"]


def test_bad_executor_options_are_one_line(monkeypatch, capsys):
    for args, message in [
        (["--executor", "slurm"], "valid: local, ray"),
        (["--ray-address", "auto"], "--ray-address needs --executor ray"),
        (["--executor", "ray", "--devices", "cpu"], "--devices is for --executor local"),
        (["--executor", "ray", "--workers", "0"], "--workers must be a positive integer"),
    ]:
        code, _, err = run_cli(["run", "--dry-run", *args], monkeypatch, capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)


def test_dry_run_shows_the_plan_per_worker(monkeypatch, capsys):
    code, stdout, _ = run_cli(
        ["run", "--methods", "lora,nara", "--tasks", "synth_math", "--seeds", "0,1,2",
         "--devices", "cpu,cpu", "--dry-run"],
        monkeypatch,
        capsys,
    )  # fmt: skip
    assert code == 0 and "plan per worker (local executor" in stdout
    rows = [line for line in stdout.splitlines() if line.strip().startswith(("│ w0", "│ w1"))]
    assert len(rows) >= 2


def test_grid_file_names_the_executor(tmp_path, monkeypatch, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("methods: [lora]\ntasks: [synth_math]\nexecutor: ray\nray_address: 1\n")
    code, _, err = run_cli(["run", "--config", str(grid), "--dry-run"], monkeypatch, capsys)
    assert code == 2 and "'ray_address' must be auto or HOST:PORT" in err
    grid.write_text("methods: [lora]\ntasks: [synth_math]\nexecutor: ray\nworkers: 3\n")
    code, stdout, _ = run_cli(["run", "--config", str(grid), "--dry-run"], monkeypatch, capsys)
    assert code == 0 and "plan per worker (ray executor" in stdout and "│ w2" in stdout


def test_a_new_driver_waits_out_a_dead_driver_s_lease_then_runs_the_cell(tmp_path):
    from harness.run.executors.job import Job
    from harness.run.executors.lease import boot_id
    from harness.run.executors.queue import JobQueue

    (request,) = requests_for(quick_spec("tiny", methods=["lora"]))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True).stdout.strip()  # fmt: skip
    book = LeaseBook(tmp_path, stale_s=3600, death_margin_s=0.3)
    lease = {"owner": "d" * 32, "host": __import__("socket").gethostname(), "boot": boot_id(),
             "pid": int(dead), "beat_s": 0.1}  # fmt: skip
    book.path(request.cell.cell_id).write_text(json.dumps(lease))
    queue = JobQueue(
        [Job(request, tmp_path / "cells" / request.cell.cell_id)], tmp_path, leases=book
    )
    start = time.time()
    job = queue.next()
    assert job is not None and job.cell_id == request.cell.cell_id and not queue.held
    assert 0.3 < time.time() - start < 30
    assert read_lease(book.path(job.cell_id)).owner == book.token
