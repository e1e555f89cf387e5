"""The client side of the sandbox's fork server: one server per scoring process, shared by threads.

Starting a fresh interpreter per program (``python -I``, then the runner's imports) costs about
30 ms, several times what a typical test program needs. The server (``_sandbox_runner.py
--serve``) pays for the interpreter and the standard library's imports once and forks a child per
program; :mod:`tasks.sandbox` keeps doing everything else per program (work dir, uid, timeout,
killing the group, reading the result). The server is started in an empty network namespace of
its own (as the per-program interpreters were), and each child asks for one of its own on top.

A server that dies (killed from outside) fails the programs it was running with an error and is
replaced on the next program; a process that forked after starting one starts its own.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

RUNNER = Path(__file__).with_name("_sandbox_runner.py")


class ServerGone(RuntimeError):
    """The fork server exited before it reported a program's end."""


@dataclass
class ForkedProgram:
    """One program's messages from the server: its pid, then its wait status and CPU seconds."""

    started: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    pid: int = 0
    status: int = 0
    cpu_s: float = 0.0
    error: str | None = None

    def wait(self) -> tuple[int, float]:
        """(wait status, CPU seconds) once the server has reaped the program."""
        self.ended.wait()
        if self.error is not None:
            raise ServerGone(self.error)
        return self.status, self.cpu_s


class ForkServer:
    """A running ``_sandbox_runner.py --serve`` and the thread that reads its answers."""

    def __init__(self, python: str, prefix: list[str], env: dict[str, str]) -> None:
        self.owner = os.getpid()
        self.proc = subprocess.Popen(
            [*prefix, python, "-I", str(RUNNER), "--serve"],
            cwd="/",
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.ids = itertools.count()
        self.pending: dict[int, ForkedProgram] = {}
        self.gone: str | None = None
        self.reader = threading.Thread(target=self._read, name="sandbox-fork-server", daemon=True)
        self.reader.start()

    @property
    def alive(self) -> bool:
        return self.gone is None and self.proc.poll() is None

    def start(self, request: dict) -> ForkedProgram:
        """Ask for one program's process; returns once it exists (its pid is known)."""
        program = ForkedProgram()
        with self.lock:
            if self.gone is not None:
                raise ServerGone(self.gone)
            rid = next(self.ids)
            self.pending[rid] = program
        # Written under a lock of its own: the reader thread never waits for a blocked write.
        with self.write_lock:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write((json.dumps({**request, "id": rid}) + "\n").encode())
                self.proc.stdin.flush()
            except OSError as e:
                with self.lock:
                    self.pending.pop(rid, None)
                raise ServerGone(f"fork server unreachable: {e}") from e
        program.started.wait()
        if program.error is not None:
            raise ServerGone(program.error)
        return program

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            with self.lock:
                program = self.pending.get(message["id"])
                if program is None:
                    continue
                if "error" in message:
                    program.error = message["error"]
                elif "pid" in message:
                    program.pid = message["pid"]
                    program.started.set()
                    continue
                else:
                    program.status, program.cpu_s = message["status"], message["cpu_s"]
                del self.pending[message["id"]]
            program.started.set()
            program.ended.set()
        with self.lock:
            self.gone = f"fork server exited (return code {self.proc.wait()})"
            for program in self.pending.values():
                program.error = self.gone
                program.started.set()
                program.ended.set()
            self.pending.clear()

    def close(self) -> None:
        """Closing stdin makes the server kill what still runs and exit."""
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


_server: ForkServer | None = None
_server_lock = threading.Lock()


def fork_server(python: str, prefix: list[str], env: dict[str, str]) -> ForkServer:
    """This process's server, started on first use and replaced when it died."""
    global _server
    with _server_lock:
        if _server is None or _server.owner != os.getpid() or not _server.alive:
            if _server is not None and _server.owner == os.getpid():
                _server.close()
            _server = ForkServer(python, prefix, env)
        return _server


@atexit.register
def _close_server() -> None:
    if _server is not None and _server.owner == os.getpid():
        _server.close()
