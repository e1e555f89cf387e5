"""The sandbox's fork server: programs forked from one pre-imported server stay isolated from
each other and keep every limit that a fresh interpreter had."""

from __future__ import annotations

import os
import signal

import pytest

from harness.ground import machine_load
from tasks import sandbox_server
from tasks.sandbox import Limits, capabilities, run_program

FORKED = Limits(timeout_s=5.0, start="fork-server")

FIRST = """
import builtins, json, os, sys
json.dumps = lambda *a, **k: "tampered"
builtins.LEAKED = True
sys.modules["planted"] = sys
sys.path.insert(0, "/planted")
os.environ["LEAKED"] = "1"
open("left-behind.txt", "w").write("x")
print(os.getppid(), os.getcwd())
"""

SECOND = """
import builtins, json, os, sys
assert json.dumps([1]) == "[1]", json.dumps([1])
assert not hasattr(builtins, "LEAKED")
assert "planted" not in sys.modules
assert "/planted" not in sys.path
assert "LEAKED" not in os.environ
assert not os.path.exists("left-behind.txt")
print(os.getppid(), os.getcwd())
"""


def test_a_program_cannot_change_what_the_next_one_sees():
    unguarded = Limits(timeout_s=5.0, guard=False, start="fork-server")  # isolation by process
    first = run_program(FIRST, unguarded)
    second = run_program(SECOND, unguarded)
    assert first.passed, first.stderr_tail
    assert second.passed, second.stderr_tail
    (server_a, dir_a), (server_b, dir_b) = (r.stdout_tail.split() for r in (first, second))
    # Both were forked by the same live server (not started afresh), each in its own folder,
    # and the first one's folder is gone.
    assert server_a == server_b != str(os.getpid())
    assert sandbox_server._server is not None
    assert server_a == str(sandbox_server._server.proc.pid)
    assert dir_a != dir_b and not os.path.exists(dir_a)


def test_programs_do_not_share_a_random_seed():
    program = "import random\nprint(random.getrandbits(64))\n"
    draws = {run_program(program, FORKED).stdout_tail.strip() for _ in range(3)}
    assert len(draws) == 3


def test_a_forked_program_starts_with_its_own_limits_and_clock():
    program = (
        "import resource\n"
        "assert resource.getrlimit(resource.RLIMIT_CPU) == (6, 6)\n"
        "assert resource.getrlimit(resource.RLIMIT_AS)[1] == 1536 * 1024 * 1024\n"
        "assert resource.getrlimit(resource.RLIMIT_FSIZE)[1] == 16 * 1024 * 1024\n"
        "usage = resource.getrusage(resource.RUSAGE_SELF)\n"
        "assert usage.ru_utime + usage.ru_stime < 1.0, usage\n"
    )
    result = run_program(program, Limits(timeout_s=5.0, guard=False, start="fork-server"))
    assert result.passed, result.stderr_tail


def test_a_forked_program_ends_like_a_fresh_interpreter():
    program = (
        "import __main__, atexit, threading, time\n"
        "X = 1\n"
        "assert __main__.X == 1\n"
        "atexit.register(lambda: print('atexit ran', flush=True))\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), print('thread ran'))).start()\n"
    )
    forked = run_program(program, FORKED)
    fresh = run_program(program, Limits(timeout_s=5.0, start="interpreter"))
    # Output after the program's last statement follows the nonce, so neither counts as a pass;
    # what matters is that a forked program ends as a fresh interpreter does.
    assert forked.status == fresh.status == "failed"
    assert forked.returncode == fresh.returncode == 0
    for result in (forked, fresh):
        assert "thread ran" in result.stdout_tail and "atexit ran" in result.stdout_tail


def test_a_killed_server_is_replaced():
    assert run_program("x = 1\n", FORKED).passed
    server = sandbox_server._server
    assert server is not None
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    result = run_program("x = 2\n", FORKED)
    assert result.passed, result.stderr_tail
    assert sandbox_server._server is not server


def test_forked_programs_cpu_counts_as_this_process_children():
    before = machine_load._cpu_seconds()
    program = (
        "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end:\n    pass\n"
    )
    assert run_program(program, FORKED).passed
    assert machine_load._cpu_seconds() - before >= 0.45


@pytest.mark.skipif(not capabilities().root, reason="a uid of its own per program needs root")
def test_each_forked_program_runs_under_a_uid_of_its_own():
    program = "import os\nprint(os.getuid())\n"
    uids = {run_program(program, FORKED).stdout_tail.strip() for _ in range(3)}
    assert "0" not in uids and len(uids) >= 2
