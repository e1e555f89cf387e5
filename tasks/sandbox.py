"""Run untrusted Python programs (generated code) safely enough for benchmark scoring.

Each program runs in its own process: its own session/process group and temporary work
directory, a clean environment (PATH, LANG and a HOME inside the work dir only), `python -I`,
resource limits set before any user code (address space, CPU seconds, file size, open files, and,
when we are root, a process count under a uid of its own), a guard that blocks process creation,
sockets and file writes/deletions outside the work dir, and a network namespace of its own when
`unshare -n` works here. A wall-clock timeout kills the WHOLE process group (and every process of
the program's uid). A result never raises: it is a status (passed | failed | timeout | error), the
return code, the elapsed time and the tail of stderr.

A program passes only when it exits 0 AND prints the runner's nonce after the program's last
statement, so `os._exit(0)` or `sys.exit(0)` before the tests cannot pass.

How a program's process starts (``Limits.start``): ``fork-server`` (the default) forks it from a
server interpreter that has already imported the standard library (one per scoring process,
:class:`ForkServer`; the program still gets a process, session, uid, limits, work dir and network
namespace of its own, and the server never runs program code); ``interpreter`` starts a fresh
`python -I` per program, about 30 ms more per program. Both run the same child-side code
(`_sandbox_runner.py`) and give the same results.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from harness.ground.machine_load import charge_child_cpu, worker_threads_hint
from tasks.sandbox_server import ServerGone, fork_server

log = logging.getLogger(__name__)

RUNNER = Path(__file__).with_name("_sandbox_runner.py")
Status = Literal["passed", "failed", "timeout", "error"]
UID_BASE = 61_000
UID_SPAN = 4_000


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0
    memory_mb: int = 1536
    file_mb: int = 16
    nproc: int = 16
    guard: bool = True
    start: Literal["fork-server", "interpreter"] = "fork-server"


@dataclass(frozen=True)
class ExecResult:
    status: Status
    returncode: int | None
    elapsed_s: float
    stderr_tail: str = ""
    stdout_tail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class Capabilities:
    root: bool  # can run each program under a uid of its own (NPROC limit, file permissions)
    netns: bool  # `unshare -n` gives each program an empty network namespace
    python: str


def _works_as_sandbox_user(python: str) -> bool:
    """Whether `python` starts and imports its stdlib under an unprivileged sandbox uid (a
    pyenv interpreter under /root, say, cannot: its files are not readable by other users)."""
    probe = "import shutil, socket, subprocess, json, collections, heapq, re, math"
    try:
        return (
            subprocess.run(
                [python, "-I", "-c", probe],
                user=UID_BASE - 1,
                group=UID_BASE - 1,
                extra_groups=[],
                capture_output=True,
                timeout=20,
                cwd="/",
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


@lru_cache(maxsize=1)
def capabilities() -> Capabilities:
    """What isolation works here (probed once per process).

    As root each program runs under a uid of its own, with an interpreter that uid can read:
    $BENCH_SANDBOX_PYTHON, this interpreter, or the system python3 - the first that works.
    """
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    python = sys.executable
    if root:
        candidates = [
            os.environ.get("BENCH_SANDBOX_PYTHON"),
            sys.executable,
            "/usr/bin/python3",
            "/usr/local/bin/python3",
            shutil.which("python3"),
        ]
        usable = next((c for c in candidates if c and _works_as_sandbox_user(c)), None)
        if usable is None:
            log.warning("no python runs as an unprivileged uid here; sandbox runs without uid")
            root = False
        else:
            python = usable
    netns = False
    unshare = shutil.which("unshare")
    if unshare and sys.platform.startswith("linux"):
        cmd = [unshare, "-n", "true"] if root else [unshare, "-r", "-n", "true"]
        try:
            netns = subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.SubprocessError):
            netns = False
    return Capabilities(root=root, netns=netns, python=python)


_uid_rng = random.Random()
_uid_lock = threading.Lock()


def _uid_dir() -> Path:
    d = Path(tempfile.gettempdir()) / "bench-sandbox-uids"
    d.mkdir(mode=0o700, exist_ok=True)
    return d


def _take_uid() -> int:
    """Claim a sandbox uid no other program (in any process) is using: an exclusive lock file
    per uid holding the claimant's pid; claims of dead processes are taken over."""
    d = _uid_dir()
    while True:
        with _uid_lock:
            uid = UID_BASE + _uid_rng.randrange(UID_SPAN)
        path = d / str(uid)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            try:
                owner = int(path.read_text() or "0")
                os.kill(owner, 0)
            except (ProcessLookupError, ValueError):
                path.unlink(missing_ok=True)  # stale claim of a dead process
            except (OSError, PermissionError):
                pass
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return uid


def _release_uid(uid: int) -> None:
    (_uid_dir() / str(uid)).unlink(missing_ok=True)


def _kill_uid(uid: int) -> None:
    """SIGKILL every process owned by `uid` (programs that left their process group)."""
    for _ in range(5):
        found = False
        with os.scandir("/proc") as entries:
            for entry in entries:
                if not entry.name.isdigit():
                    continue
                try:
                    if entry.stat().st_uid != uid:
                        continue
                    found = True
                    os.kill(int(entry.name), signal.SIGKILL)
                except (FileNotFoundError, ProcessLookupError, PermissionError):
                    continue
        if not found:
            return
        time.sleep(0.02)


def _tail(path: Path, n: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _env(workdir: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def run_program(source: str, limits: Limits | None = None) -> ExecResult:
    """Run one Python program in the sandbox. Never raises."""
    limits = limits or Limits()
    caps = capabilities()
    start = time.monotonic()
    uid = _take_uid() if caps.root else None
    workdir = tempfile.mkdtemp(prefix="bench-sbx-")
    try:
        return _run(source, limits, caps, uid, workdir, start)
    except Exception as e:  # the sandbox itself failed: report, never raise into the scorer
        log.warning("sandbox error: %s", e)
        return ExecResult("error", None, time.monotonic() - start, f"{type(e).__name__}: {e}")
    finally:
        if uid is not None:
            _kill_uid(uid)
            _release_uid(uid)
        shutil.rmtree(workdir, ignore_errors=True)


def _run(
    source: str, limits: Limits, caps: Capabilities, uid: int | None, workdir: str, start: float
) -> ExecResult:
    work = Path(workdir)
    (work / "program.py").write_text(source, encoding="utf-8")
    if uid is not None:
        os.chown(workdir, uid, uid)
        os.chown(work / "program.py", uid, uid)
    cfg = {
        "memory_mb": limits.memory_mb,
        "cpu_s": int(math.ceil(limits.timeout_s)) + 1,
        "file_mb": limits.file_mb,
        "nproc": limits.nproc if uid is not None else None,
        "uid": uid,
        "guard": limits.guard,
    }
    nonce = secrets.token_hex(16)
    if limits.start == "fork-server":
        rc, timed_out = _run_forked(cfg, nonce, limits, caps, workdir)
    else:
        rc, timed_out = _run_interpreter(cfg, nonce, limits, caps, workdir)
    return _result(rc, timed_out, nonce, work, time.monotonic() - start)


def _netns_prefix(caps: Capabilities) -> list[str]:
    if not caps.netns:
        return []
    return ["unshare", "-n", "--"] if caps.root else ["unshare", "-r", "-n", "--"]


def _watch(pid: int, timeout_s: float) -> tuple[threading.Timer, threading.Event]:
    """A timer that kills the program's whole process group after ``timeout_s``."""
    timed_out = threading.Event()

    def kill_group() -> None:
        timed_out.set()
        _kill_group(pid)

    timer = threading.Timer(timeout_s, kill_group)
    timer.start()
    return timer, timed_out


def _kill_group(pid: int) -> None:
    """SIGKILL the program's process group, and the program itself should it not lead one yet."""
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def _run_interpreter(
    cfg: dict, nonce: str, limits: Limits, caps: Capabilities, workdir: str
) -> tuple[int | None, bool]:
    """A fresh `python -I` for the program: (return code, timed out)."""
    cmd = [*_netns_prefix(caps), caps.python, "-I", str(RUNNER), json.dumps(cfg)]
    work = Path(workdir)
    with open(work / ".stdout", "wb") as out, open(work / ".stderr", "wb") as err:
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            env=_env(workdir),
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )
        try:
            assert proc.stdin is not None
            proc.stdin.write(f"{nonce}\n".encode())
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        timer, timed_out = _watch(proc.pid, limits.timeout_s)
        try:
            proc.wait()  # a blocking wait: no polling latency
        finally:
            timer.cancel()
            _kill_group(proc.pid)  # whatever the program left in its group
    return proc.returncode, timed_out.is_set()


def _run_forked(
    cfg: dict, nonce: str, limits: Limits, caps: Capabilities, workdir: str
) -> tuple[int | None, bool]:
    """The program forked from this process's fork server: (return code, timed out)."""
    request = {"workdir": workdir, "cfg": cfg, "nonce": nonce, "env": _env(workdir)}
    request["netns"] = caps.netns
    try:
        program = _server(caps).start(request)
    except ServerGone:  # died since the last program (killed from outside): once more, afresh
        program = _server(caps).start(request)
    timer, timed_out = _watch(program.pid, limits.timeout_s)
    try:
        status, cpu_s = program.wait()
    finally:
        timer.cancel()
        _kill_group(program.pid)
    charge_child_cpu(cpu_s)
    return os.waitstatus_to_exitcode(status), timed_out.is_set()


def _server(caps: Capabilities):
    return fork_server(caps.python, _netns_prefix(caps), _env(tempfile.gettempdir()))


def _result(rc: int | None, timed_out: bool, nonce: str, work: Path, elapsed: float) -> ExecResult:
    stdout, stderr = _tail(work / ".stdout"), _tail(work / ".stderr")
    if timed_out:
        return ExecResult("timeout", None, elapsed, stderr, stdout)
    if rc == -signal.SIGXCPU:
        return ExecResult("timeout", rc, elapsed, stderr or "CPU time limit", stdout)
    if rc == 0 and stdout.rstrip().endswith(nonce):
        stdout = stdout.rstrip()[: -len(nonce)]
        return ExecResult("passed", rc, elapsed, stderr, stdout)
    if rc == 0:
        stderr += "\n[sandbox] program exited before running to its end"
    elif rc is not None and rc < 0:
        stderr += f"\n[sandbox] killed by signal {signal.Signals(-rc).name}"
    return ExecResult("failed", rc, elapsed, stderr[-2000:], stdout)


def run_programs(
    sources: Sequence[str], limits: Limits | None = None, workers: int | None = None
) -> list[ExecResult]:
    """Run many programs in parallel (threads launching subprocesses), results in input order.
    By default one program per core, or per thread of this worker when an executor runs several
    workers side by side (their sandboxes would otherwise oversubscribe the cores)."""
    if not sources:
        return []
    workers = workers or worker_threads_hint() or max(1, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=min(workers, len(sources))) as pool:
        return list(pool.map(lambda s: run_program(s, limits), sources))
