"""Cells on a Ray cluster: one actor per GPU (or per share of a CPU cluster's cores).

- **Which cluster.** No address: a fresh local Ray instance bound to 127.0.0.1 with this
  machine's cores and GPUs, shut down at the end (never a cluster found lying around). ``auto``
  or ``HOST:PORT``: join that cluster (``ray start --head`` on one node, ``ray start
  --address=HEAD:6379`` on the others). Ray is optional: ``pip install -e .[ray]``.
- **Workers.** A GPU cluster gets one actor per GPU (``num_gpus=1``). A CPU cluster gets one actor
  per node with the node's cores, or ``--workers N`` actors with ``cores / N`` each. An actor keeps
  its base model loaded across cells (``model_cache.py``); only job descriptions and outcomes
  travel through Ray, never weights and never records.
- **Records.** The actor runs ``execute_job``, which writes the cell's files and record into the
  run folder itself. So on a multi-node cluster the run folder must be on a filesystem every node
  mounts at the same path (NFS, Lustre, EFS...): each actor checks it can see a marker the driver
  wrote there and the run stops with one line if it cannot.
- **A dead actor** (killed, out of memory, node lost) is replaced by a new one and its cell goes
  back to the queue (``pool.py``, ``queue.py``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from harness.ground.errors import BenchError
from harness.run.executors.job import Job, Placement
from harness.run.executors.pool import Outcome, WorkerDied, run_pool

EXECUTOR = "ray"
INSTALL_HINT = "--executor ray needs Ray: pip install -e .[ray]"
LOCALHOST = "127.0.0.1"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def require_ray():
    """Import Ray, or stop with one line that says how to install it."""
    try:
        import ray
    except ImportError as err:
        raise BenchError(INSTALL_HINT) from err
    return ray


def start_local_ray(num_cpus: int | None = None, num_gpus: int | None = None) -> dict:
    """A new Ray instance on this machine, every process bound to 127.0.0.1; returns its
    address info. Without ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` Ray on Linux advertises the
    machine's outward address, which other hosts could reach."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.pop("RAY_ADDRESS", None)
    ray = require_ray()
    from ray._private import ray_constants  # read at call time by Ray's address lookup

    ray_constants.ENABLE_RAY_CLUSTER = False
    path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    context = ray.init(
        address="local",
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    assert_local()
    return dict(context.address_info)


def assert_local() -> None:
    """Stop unless every node of the connected Ray instance is this machine's loopback."""
    ray = require_ray()
    addresses = {node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")}
    gcs = ray.get_runtime_context().gcs_address
    if addresses != {LOCALHOST} or not gcs.startswith(LOCALHOST + ":"):
        ray.shutdown()
        raise BenchError(f"the local Ray instance is not bound to {LOCALHOST}: {addresses}, {gcs}")


def _worker_class():
    ray = require_ray()

    class BenchWorker:
        """One Ray actor: keeps a base loaded, runs one job at a time."""

        def __init__(self, name: str, device: str, threads: int, probe: str) -> None:
            import torch

            from harness.ground.machine_load import announce_threads
            from harness.run.executors.model_cache import BaseModelCache

            self.name, self.device, self.probe = name, device, probe
            torch.set_num_threads(threads)
            announce_threads(threads, None)  # other actors on this node are not known here
            os.environ["BENCH_WORKER_DEVICE"] = device
            self.cache = BaseModelCache()

        def info(self) -> dict:
            node = ray.util.get_node_ip_address()
            if not Path(self.probe).is_file():
                raise BenchError(
                    f"node {node} cannot see the run folder {Path(self.probe).parent}: put it on "
                    "a filesystem every node mounts at the same path"
                )
            gpus = ray.get_gpu_ids()
            shown = f"cuda:{gpus[0]}" if gpus else self.device
            return {"node": node, "host": socket.gethostname(), "pid": os.getpid(), "device": shown}

        def run(self, job: Job, placement: Placement) -> Outcome:
            from harness.run.executors import worker

            status, detail = worker.execute_job(job, self.device, None, self.cache, placement)
            return Outcome(status, detail, self.cache.holds, self.cache.last_load_s)

    return ray.remote(BenchWorker)


@dataclass
class ActorWorker:
    name: str
    device: str
    node: str
    pid: int
    actor: object
    holds: str | None = None
    ref: object = None

    def submit(self, job: Job) -> None:
        placement = Placement(EXECUTOR, self.name, self.device, self.node, self.pid, job.attempt)
        self.ref = self.actor.run.remote(job, placement)


@dataclass(frozen=True)
class WorkerShape:
    count: int
    gpus: int  # per worker: 0 or 1
    cpus: int  # per worker


def worker_shape(resources: dict, nodes: int, workers: int | None) -> WorkerShape:
    """One worker per GPU; else ``workers`` (default one per node) shares of the cores."""
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    if gpus and workers is None:
        return WorkerShape(gpus, 1, max(1, min(4, cpus // gpus)))
    count = workers or max(1, nodes)
    return WorkerShape(count, 0, max(1, cpus // count))


class RayBackend:
    def __init__(self, run_dir: Path, workers: int | None) -> None:
        self.ray = require_ray()
        self.run_dir = Path(run_dir)
        self.requested = workers
        self.actors: list[ActorWorker] = []
        self.started = 0
        self.probe = self.run_dir / f".driver-{secrets.token_hex(4)}"

    def _spawn(self) -> ActorWorker | None:
        name = f"w{self.started}"
        self.started += 1
        device = "cuda" if self.shape.gpus else "cpu"
        actor = self.cls.options(
            num_cpus=self.shape.cpus,
            num_gpus=self.shape.gpus,
            max_restarts=0,
            max_task_retries=0,
            name=f"bench-{self.probe.name[8:]}-{name}",
        ).remote(name, device, self.shape.cpus, str(self.probe))
        try:
            info = self.ray.get(actor.info.remote(), timeout=600)
        except self.ray.exceptions.RayTaskError as err:
            cause = err.as_instanceof_cause()
            raise BenchError(str(cause).splitlines()[-1]) from err
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.GetTimeoutError):
            return None  # no room for another actor (a node was lost)
        worker = ActorWorker(name, info["device"], info["node"], info["pid"], actor)
        self.actors.append(worker)
        return worker

    def start(self) -> list[ActorWorker]:
        self.probe.write_text(f"{socket.gethostname()} {os.getpid()}\n")
        self.cls = _worker_class()
        nodes = sum(1 for n in self.ray.nodes() if n.get("Alive"))
        self.shape = worker_shape(self.ray.cluster_resources(), nodes, self.requested)
        workers = [self._spawn() for _ in range(self.shape.count)]
        return [w for w in workers if w is not None]

    def wait(self, busy, timeout: float):
        refs = {w.ref: w for w in busy}
        ready, _ = self.ray.wait(list(refs), num_returns=1, timeout=timeout)
        out = []
        exceptions = self.ray.exceptions
        for ref in ready:
            worker = refs[ref]
            try:
                out.append((worker, self.ray.get(ref)))
            except exceptions.RayTaskError as err:  # a bug outside execute_job's isolation
                out.append((worker, Outcome("failed", str(err).splitlines()[0], None, None)))
            except (
                exceptions.RayActorError,
                exceptions.WorkerCrashedError,
                exceptions.ObjectLostError,
                exceptions.NodeDiedError,
            ) as err:
                out.append((worker, WorkerDied(f"{type(err).__name__}: {str(err)[:200]}")))
        return out

    def replace(self, dead: ActorWorker) -> ActorWorker | None:
        self.actors.remove(dead)
        with contextlib.suppress(Exception):
            self.ray.kill(dead.actor)
        return self._spawn()

    def stop(self) -> None:
        for worker in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(worker.actor)
        self.actors = []
        self.probe.unlink(missing_ok=True)


class RayExecutor:
    name = EXECUTOR

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        self.address = address
        self.requested = workers

    def _connect(self) -> bool:
        """Connect (or start the local instance); True when this call did, so it disconnects."""
        ray = require_ray()
        if ray.is_initialized():
            return False
        if self.address is None:
            start_local_ray()
        else:
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        return True

    def workers(self) -> list[tuple[str, str, str]]:
        """The workers a run would start (connects to a given cluster to count them)."""
        ray = require_ray()
        if self.address is None and not ray.is_initialized():
            import torch

            resources = {"CPU": os.cpu_count() or 1, "GPU": torch.cuda.device_count()}
            shape, node = worker_shape(resources, 1, self.requested), LOCALHOST
        else:
            owned = self._connect()
            try:
                nodes = [n for n in ray.nodes() if n.get("Alive")]
                shape = worker_shape(ray.cluster_resources(), len(nodes), self.requested)
                node = ",".join(sorted({n["NodeManagerAddress"] for n in nodes}))
            finally:
                if owned:
                    ray.shutdown()
        device = "cuda (1 GPU)" if shape.gpus else f"cpu ({shape.cpus} cores)"
        return [(f"w{i}", device, node) for i in range(shape.count)]

    def run(self, queue, listener, monitor) -> None:
        ray = require_ray()
        owned = self._connect()
        try:
            run_pool(RayBackend(queue.run_dir, self.requested), queue, listener)
        finally:
            if owned:
                ray.shutdown()
