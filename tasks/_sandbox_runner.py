"""Runs inside the sandbox: one program per process, started one of two ways.

- ``python -I _sandbox_runner.py '<json settings>'`` in the work dir runs one program in a fresh
  interpreter (the nonce arrives on stdin).
- ``python -I _sandbox_runner.py --serve`` is a fork server: an interpreter that imports the
  standard library once, then reads one JSON request per line on stdin and forks a child per
  program. The child is set up exactly as a fresh interpreter would be (own session, work dir,
  environment, stdin from /dev/null, stdout/stderr to files in the work dir, a network namespace
  of its own when asked) and then runs :func:`run_program_here`. The server itself never runs
  program code, so every program starts from the same pristine state and nothing one program does
  to modules, builtins or files reaches the next. It answers ``{"id", "pid"}`` when a child is
  started and ``{"id", "status", "cpu_s"}`` when it has been reaped (``status``: the wait status;
  ``cpu_s``: the child's CPU seconds, its own waited-for children included). It exits, killing
  what still runs, when stdin closes.

In the child, order matters: (1) resource limits (hard = soft, so the program cannot raise them),
(2) drop root to the per-program uid/gid when given, (3) a guard that blocks process creation,
sockets, and file writes or deletions outside the work dir, (4) run `program.py` as `__main__`,
(5) print a nonce that only a program that ran to its end (no `os._exit`, no crash) lets through.

Written for bench; only the standard library, nothing from the bench package is imported.
"""

import contextlib
import json
import os
import resource
import sys


def _limits(cfg):
    mb = 1024 * 1024
    settings = [
        (resource.RLIMIT_AS, cfg["memory_mb"] * mb),
        (resource.RLIMIT_DATA, cfg["memory_mb"] * mb),
        (resource.RLIMIT_CPU, cfg["cpu_s"]),
        (resource.RLIMIT_FSIZE, cfg["file_mb"] * mb),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, 256),
    ]
    if cfg.get("nproc"):
        settings.append((resource.RLIMIT_NPROC, cfg["nproc"]))
    for which, value in settings:
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            soft, hard = resource.getrlimit(which)
            if hard == resource.RLIM_INFINITY or value <= hard:
                resource.setrlimit(which, (value, hard))


def _drop(cfg):
    uid = cfg.get("uid")
    if uid is None:
        return
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _guard(workdir):
    import builtins
    import io
    import shutil
    import socket
    import subprocess

    root = os.path.realpath(workdir)

    def inside(path):
        try:
            full = os.path.realpath(os.path.join(root, os.fsdecode(path)))
        except (TypeError, ValueError):
            return False
        return full == root or full.startswith(root + os.sep)

    def denied(name):
        def blocked(*args, **kwargs):
            raise PermissionError(f"sandbox: {name} is not allowed")

        return blocked

    real_open = builtins.open

    def guarded_open(file, mode="r", *args, **kwargs):
        if isinstance(file, int):
            if file > 2:
                raise PermissionError("sandbox: opening raw file descriptors is not allowed")
        elif any(c in mode for c in "wax+") and not inside(file):
            raise PermissionError(f"sandbox: writing outside the work dir: {file!r}")
        return real_open(file, mode, *args, **kwargs)

    builtins.open = guarded_open
    io.open = guarded_open

    real_os_open = os.open
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & write_flags and not inside(path):
            raise PermissionError(f"sandbox: writing outside the work dir: {path!r}")
        return real_os_open(path, flags, *args, **kwargs)

    os.open = guarded_os_open

    def inside_only(name, func, nargs=1):
        def checked(*args, **kwargs):
            if not all(inside(a) for a in args[:nargs]):
                raise PermissionError(f"sandbox: {name} outside the work dir")
            return func(*args, **kwargs)

        return checked

    for name in ("remove", "unlink", "rmdir", "mkdir", "makedirs", "truncate", "mkfifo"):
        if hasattr(os, name):
            setattr(os, name, inside_only(f"os.{name}", getattr(os, name)))
    for name in ("rename", "replace", "link", "symlink"):
        setattr(os, name, inside_only(f"os.{name}", getattr(os, name), nargs=2))
    for name in (
        "chdir", "fchdir", "chroot", "chmod", "fchmod", "lchmod", "chown", "fchown", "lchown",
        "removedirs", "kill", "killpg", "fork", "forkpty", "vfork", "system", "popen",
        "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe",
        "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe",
        "posix_spawn", "posix_spawnp", "putenv", "unsetenv", "setuid", "setgid", "nice",
    ):  # fmt: skip
        if hasattr(os, name):
            setattr(os, name, denied(f"os.{name}"))
    shutil.rmtree = denied("shutil.rmtree")
    shutil.move = denied("shutil.move")
    shutil.chown = denied("shutil.chown")
    subprocess.Popen = denied("subprocess.Popen")
    for name in ("run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"):
        setattr(subprocess, name, denied(f"subprocess.{name}"))

    blocked_socket = denied("network access")
    for name in ("socket", "create_connection", "create_server", "socketpair", "fromfd"):
        setattr(socket, name, blocked_socket)
    try:
        import _socket

        _socket.socket = blocked_socket
        _socket.SocketType = blocked_socket
    except ImportError:
        pass
    for mod in ("multiprocessing", "ctypes", "_ctypes", "_posixsubprocess", "pty", "resource"):
        sys.modules[mod] = None  # importing them now raises ImportError


def run_program_here(cfg, nonce):
    """Steps (1)-(5) in this process, whose cwd is the work dir."""
    _limits(cfg)
    _drop(cfg)
    with open("program.py", encoding="utf-8") as f:
        source = f.read()
    if cfg.get("guard", True):
        _guard(os.getcwd())
    code = compile(source, "program.py", "exec")
    exec(code, _main_namespace())
    sys.stdout.flush()
    os.write(1, f"\n{nonce}\n".encode())


def _main_namespace():
    """A fresh ``__main__`` module for the program: ``import __main__`` finds the program, not the
    runner."""
    import types

    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = module
    return module.__dict__


def main():
    cfg = json.loads(sys.argv[1])
    nonce = sys.stdin.readline().strip()
    sys.stdin.close()
    sys.stdin = open(os.devnull)  # noqa: SIM115
    del sys.argv[1:]
    run_program_here(cfg, nonce)


# ---- the fork server -------------------------------------------------------------------------

# Imported once by the server so that children do not pay for them: what the guard needs and
# what test programs commonly import. ``random`` reseeds itself in every forked child
# (``os.register_at_fork``), so no two programs share a seed.
PRELOAD = [
    "builtins",
    "io",
    "shutil",
    "socket",
    "subprocess",
    "tempfile",
    "traceback",
    "types",
    "threading",
    "atexit",
    "math",
    "cmath",
    "re",
    "string",
    "collections",
    "collections.abc",
    "heapq",
    "bisect",
    "itertools",
    "functools",
    "operator",
    "typing",
    "dataclasses",
    "copy",
    "fractions",
    "decimal",
    "random",
    "statistics",
    "hashlib",
    "datetime",
    "textwrap",
]
CLONE_NEWNET = 0x40000000


def _netns_unshare():
    """A network namespace of this process's own (no interfaces but a down loopback)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")


def _child(request):
    """In the forked child: become a fresh program process, run it, never return."""
    code = 1
    try:
        os.setsid()
        os.chdir(request["workdir"])
        stdin = os.open(os.devnull, os.O_RDONLY)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        out = os.open(".stdout", flags, 0o644)
        err = os.open(".stderr", flags, 0o644)
        for fd, target in ((stdin, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
        os.closerange(3, 65536)  # the server's pipes and the other children's pidfds
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
        sys.__stdout__, sys.__stderr__, sys.__stdin__ = sys.stdout, sys.stderr, sys.stdin
        os.environ.clear()
        os.environ.update(request["env"])
        import tempfile

        tempfile.tempdir = None  # recomputed from this program's TMPDIR
        if request.get("netns"):
            with contextlib.suppress(OSError):  # else: in the server's own empty namespace
                _netns_unshare()
        sys.modules.pop("ctypes", None)
        sys.argv[1:] = []
        try:
            run_program_here(request["cfg"], request["nonce"])
            code = 0
        except SystemExit as e:
            code = _exit_code(e.code)
        except BaseException:
            sys.excepthook(*sys.exc_info())
            code = 1
        code = _finish(code)
    finally:
        os._exit(code)


def _exit_code(value):
    """What the interpreter would exit with for ``SystemExit(value)``."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    with contextlib.suppress(Exception):
        print(value, file=sys.stderr)
    return 1


def _finish(code):
    """The interpreter's own shutdown: wait for non-daemon threads, run atexit, flush."""
    import atexit
    import threading

    try:
        threading._shutdown()
        atexit._run_exitfuncs()
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException:
        code = code or 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            code = code or 120
    return code


def serve():
    import importlib
    import select

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    import ctypes  # noqa: F401 - loaded once here; each child drops it before the program runs

    children = {}  # pidfd -> (request id, pid)
    buffer = b""

    def send(message):
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(1, data) :]

    while True:
        readable, _, _ = select.select([0, *children], [], [])
        for fd in readable:
            if fd == 0:
                chunk = os.read(0, 65536)
                if not chunk:
                    for _, pid in children.values():
                        for kill in (os.killpg, os.kill):
                            with contextlib.suppress(OSError):
                                kill(pid, 9)
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    request = json.loads(line)
                    try:
                        pid = os.fork()
                    except OSError as e:
                        send({"id": request["id"], "error": f"fork failed: {e}"})
                        continue
                    if pid == 0:
                        _child(request)
                    children[os.pidfd_open(pid)] = (request["id"], pid)
                    send({"id": request["id"], "pid": pid})
            else:
                rid, pid = children.pop(fd)
                os.close(fd)
                _, status, usage = os.wait4(pid, 0)
                send({"id": rid, "status": status, "cpu_s": usage.ru_utime + usage.ru_stime})


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        main()
