"""Per-cell leases: two ``bench run`` on one run folder never run the same cell.

A driver takes a cell's lease right before it hands the cell to a worker and gives it back when
the cell's record is final. A lease is the file ``<run>/leases/<cell_id>.json`` holding its owner
(a random token), host, boot id and pid, created with ``O_CREAT | O_EXCL`` so exactly one driver
wins it. The file's modification time is the heartbeat: the owner touches every lease it holds
every ``stale_s / 6`` seconds from a background thread.

A lease is stale, and another driver takes it over, when its owner is dead (same host and boot,
pid gone) and its heartbeat is older than one beat plus ``death_margin_s`` (so at least that long
has passed since the death: the dead driver's workers die with it, Ray actors within a second or
two, and none may still be writing the cell), or when its heartbeat is older than ``stale_s``
(owner on another host, a lost node, a frozen machine). A takeover renames the stale file away (atomic: one contender wins), checks that
what it moved is the lease it judged stale, and then creates its own with ``O_EXCL``. A
contender that moved a lease someone had just taken puts it back. Nothing here needs a lock
server, and it works on a shared filesystem that renames atomically and honours ``O_EXCL`` (NFS
v3+, Lustre, EFS).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LEASES = "leases"
DEFAULT_STALE_S = 60.0
DEATH_MARGIN_S = 5.0


def boot_id() -> str:
    """Tells two machines with the same host name apart (and a host before and after a reboot)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_after() -> float:
    return float(os.environ.get("BENCH_LEASE_STALE_S", DEFAULT_STALE_S))


@dataclass(frozen=True)
class LeaseInfo:
    """A lease as read from disk."""

    owner: str
    host: str
    boot: str
    pid: int
    cell: str
    heartbeat: float  # the file's modification time
    beat_s: float  # the owner's heartbeat period

    @property
    def age_s(self) -> float:
        return time.time() - self.heartbeat

    def owner_dead(self) -> bool:
        return (
            self.host == socket.gethostname() and self.boot == boot_id() and not pid_alive(self.pid)
        )

    def grace_s(self, stale_s: float, death_margin_s: float) -> float:
        """How long a dead owner's lease is left alone: one of its beats plus the margin."""
        return min(stale_s, self.beat_s + death_margin_s)

    def stale(self, stale_s: float, death_margin_s: float) -> bool:
        """No beat for ``stale_s``, or a dead owner and no beat for its grace."""
        grace = self.grace_s(stale_s, death_margin_s)
        silent = max(stale_s, 3 * self.beat_s)  # never less than three of the owner's beats
        return self.age_s > silent or (self.age_s > grace and self.owner_dead())

    def describe(self) -> str:
        return f"owner {self.owner[:8]} (pid {self.pid} on {self.host}, heartbeat {self.age_s:.0f} s ago)"


def read_lease(path: Path) -> LeaseInfo | None:
    """The lease at ``path``, or None when there is none. A lease being written right now (empty
    or partial) reads as held by an unknown owner, fresh until its heartbeat ages."""
    try:
        stat = path.stat()
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = {}
    return LeaseInfo(
        owner=str(data.get("owner", "")),
        host=str(data.get("host", "")),
        boot=str(data.get("boot", "")),
        pid=int(data.get("pid", -1)),
        cell=str(data.get("cell", path.stem)),
        heartbeat=stat.st_mtime,
        beat_s=float(data.get("beat_s", DEFAULT_STALE_S / 6)),
    )


class LeaseBook:
    """The leases one driver holds on one run folder, kept alive by a heartbeat thread."""

    def __init__(
        self, run_dir: Path, stale_s: float | None = None, death_margin_s: float = DEATH_MARGIN_S
    ) -> None:
        self.folder = Path(run_dir) / LEASES
        self.folder.mkdir(parents=True, exist_ok=True)
        self.token = secrets.token_hex(16)
        self.stale_s = stale_after() if stale_s is None else stale_s
        self.interval = max(0.05, self.stale_s / 6)  # the heartbeat's period
        self.death_margin_s = death_margin_s
        self.held: set[str] = set()
        self.lost: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def path(self, cell_id: str) -> Path:
        return self.folder / f"{cell_id}.json"

    def _content(self, cell_id: str) -> bytes:
        data = {
            "owner": self.token,
            "host": socket.gethostname(),
            "boot": boot_id(),
            "pid": os.getpid(),
            "cell": cell_id,
            "taken_at": time.time(),
            "beat_s": self.interval,
        }
        return (json.dumps(data) + "\n").encode()

    def _create(self, cell_id: str) -> bool:
        try:
            fd = os.open(self.path(cell_id), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, self._content(cell_id))
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def take(self, cell_id: str) -> LeaseInfo | None:
        """Take the cell's lease; None on success, else the live lease of its other owner."""
        path = self.path(cell_id)
        for _ in range(5):
            if self._create(cell_id):
                with self._lock:
                    self.held.add(cell_id)
                return None
            current = read_lease(path)
            if current is None:
                continue  # released in between: try again
            if current.owner == self.token:
                with self._lock:
                    self.held.add(cell_id)
                return None
            if not current.stale(self.stale_s, self.death_margin_s):
                return current
            log.warning("taking over the stale lease of %s: %s", cell_id, current.describe())
            self._remove_stale(path, current)
        return read_lease(path)

    def _remove_stale(self, path: Path, judged: LeaseInfo) -> None:
        moved = path.with_name(f".{path.name}.stale-{self.token[:8]}-{time.time_ns()}")
        try:
            os.rename(path, moved)
        except FileNotFoundError:
            return  # another contender moved it first
        found = read_lease(moved)
        if found is not None and found.owner != judged.owner:
            # a lease taken right after our read: give it back (link fails if a third took it)
            with contextlib.suppress(FileExistsError):
                os.link(moved, path)
        moved.unlink(missing_ok=True)

    def sweep(self) -> int:
        """Remove every stale lease (those a dead driver left on cells it had finished)."""
        removed = 0
        for path in self.folder.glob("*.json"):
            info = read_lease(path)
            mine = info is not None and info.owner == self.token
            if info is not None and not mine and info.stale(self.stale_s, self.death_margin_s):
                self._remove_stale(path, info)
                removed += 1
        return removed

    def release(self, cell_id: str) -> None:
        with self._lock:
            self.held.discard(cell_id)
        path = self.path(cell_id)
        current = read_lease(path)
        if current is not None and current.owner == self.token:
            path.unlink(missing_ok=True)

    # -- heartbeat --------------------------------------------------------------------------
    def beat(self) -> None:
        """Touch every lease still ours; note the ones another driver took over."""
        with self._lock:
            held = list(self.held)
        for cell_id in held:
            path = self.path(cell_id)
            current = read_lease(path)
            if current is None or current.owner != self.token:
                if cell_id not in self.lost:
                    log.error("lease of %s was taken over by another run", cell_id)
                self.lost.add(cell_id)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.utime(path)

    def start(self) -> LeaseBook:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.beat()

        self._thread = threading.Thread(target=loop, name="bench-lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for cell_id in list(self.held):
            self.release(cell_id)
