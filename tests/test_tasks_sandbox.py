"""The code sandbox: canonical solutions pass, broken and hostile programs are contained."""

from __future__ import annotations

import os
import random
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tasks.code_tasks import humaneval_program, mbpp_program
from tasks.registry import get_task
from tasks.sandbox import Limits, capabilities, run_program, run_programs
from tasks.sources import load_split

FAST = Limits(timeout_s=3.0)
# Every containment test runs with both ways of starting a program's process.
STARTS = pytest.mark.parametrize("how", ["fork-server", "interpreter"])


def fast(how: str) -> Limits:
    return Limits(timeout_s=3.0, start=how)


@pytest.fixture(scope="module")
def humaneval():
    return load_split(get_task("humaneval"), "test").examples


def test_every_canonical_humaneval_solution_passes_in_parallel(humaneval):
    programs = [humaneval_program(ex, ex.target) for ex in humaneval]
    start = time.monotonic()
    results = run_programs(programs, Limits(timeout_s=20.0))
    elapsed = time.monotonic() - start
    failed = [
        (ex.id, r.status, r.stderr_tail[-300:])
        for ex, r in zip(humaneval, results, strict=True)
        if not r.passed
    ]
    assert len(results) == 164
    assert not failed, failed
    assert elapsed < 90, f"164 programs took {elapsed:.1f}s"


def test_corrupted_humaneval_solution_fails(humaneval):
    ex = humaneval[0]
    wrong = ex.target.replace("return True", "return False")
    assert wrong != ex.target
    assert run_program(humaneval_program(ex, wrong), FAST).status == "failed"
    syntax = run_program(humaneval_program(ex, "    return (\n"), FAST)
    assert syntax.status == "failed" and "SyntaxError" in syntax.stderr_tail


def test_sample_of_canonical_mbpp_solutions_passes():
    examples = load_split(get_task("mbpp"), "test").examples
    sample = random.Random(0).sample(examples, 30)
    results = run_programs([mbpp_program(ex, ex.target) for ex in sample], Limits(timeout_s=20.0))
    assert [ex.id for ex, r in zip(sample, results, strict=True) if not r.passed] == []


@STARTS
def test_infinite_loop_is_killed_near_its_limit(how):
    start = time.monotonic()
    result = run_program("while True:\n    pass\n", Limits(timeout_s=2.0, start=how))
    assert result.status == "timeout"
    assert time.monotonic() - start < 2.0 + 2.0


@STARTS
def test_sleeping_program_is_killed_on_wall_clock(how):
    start = time.monotonic()
    result = run_program("import time\ntime.sleep(60)\n", Limits(timeout_s=1.5, start=how))
    assert result.status == "timeout"
    assert time.monotonic() - start < 1.5 + 2.0


@STARTS
def test_exit_before_the_tests_is_not_a_pass(how):
    assert run_program("import os\nos._exit(0)\nassert False\n", fast(how)).status == "failed"
    assert run_program("import sys\nsys.exit(0)\nassert False\n", fast(how)).status == "failed"
    assert run_program("x = 1\nassert x == 1\n", fast(how)).status == "passed"


@STARTS
def test_fork_bomb_is_contained(how):
    bomb = "import os\nwhile True:\n    os.fork()\n"
    assert run_program(bomb, fast(how)).status == "failed"
    ctypes_bomb = "import ctypes\nlibc = ctypes.CDLL(None)\nwhile True:\n    libc.fork()\n"
    assert run_program(ctypes_bomb, fast(how)).status == "failed"


@pytest.mark.skipif(not capabilities().root, reason="process limits need a uid of its own (root)")
@STARTS
def test_process_limit_holds_without_the_python_guard(how):
    # Bounded even if the limit failed: at most 100 sleeping children, all killed afterwards.
    program = (
        "import os, time\n"
        "n = 0\n"
        "for _ in range(100):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(30)\n"
        "        os._exit(0)\n"
        "    n += 1\n"
        "print('children', n, flush=True)\n"
    )
    limits = Limits(timeout_s=5.0, nproc=8, guard=False, start=how)
    result = run_program(program, limits)
    assert result.status == "passed", result.stderr_tail
    assert int(result.stdout_tail.split()[-1]) < 8


@STARTS
def test_ten_gigabyte_allocation_fails_fast(how):
    start = time.monotonic()
    result = run_program("x = bytearray(10 * 1024 ** 3)\n", fast(how))
    assert result.status == "failed" and "MemoryError" in result.stderr_tail
    assert time.monotonic() - start < 3.0
    unguarded = run_program(
        "x = bytearray(10 * 1024 ** 3)\n", Limits(timeout_s=3.0, guard=False, start=how)
    )
    assert unguarded.status == "failed"


@STARTS
def test_writing_or_deleting_outside_the_work_dir_is_blocked(how):
    outside = Path(tempfile.mkdtemp(prefix="bench-outside-"))
    try:
        outside.chmod(0o777)  # even a world-writable directory
        victim = outside / "keep.txt"
        victim.write_text("data")
        victim.chmod(0o666)
        target = outside / "escape.txt"
        for program in (
            f"open({str(target)!r}, 'w').write('x')\n",
            f"import os\nfd = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)\n",
            f"import os\nos.remove({str(victim)!r})\n",
            f"import shutil\nshutil.rmtree({str(outside)!r})\n",
            f"import os\nos.chdir({str(outside)!r})\nopen('escape.txt', 'w')\n",
        ):
            assert run_program(program, fast(how)).status == "failed", program
        assert not target.exists()
        assert victim.read_text() == "data"
        inside = "open('local.txt', 'w').write('ok')\nassert open('local.txt').read() == 'ok'\n"
        assert run_program(inside, fast(how)).status == "passed"
    finally:
        for p in outside.iterdir():
            p.unlink()
        outside.rmdir()


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join(2)
    server.close()


@STARTS
def test_opening_a_network_socket_is_blocked(listener, how):
    port, accepted = listener
    program = (
        f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "s.sendall(b'leak')\n"
    )
    assert run_program(program, fast(how)).status == "failed"
    raw = f"import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\n"
    assert run_program(raw, fast(how)).status == "failed"
    assert accepted == []


@pytest.mark.skipif(not capabilities().netns, reason="no network namespace here")
@STARTS
def test_network_namespace_blocks_sockets_without_the_python_guard(listener, how):
    port, accepted = listener
    raw = f"import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\n"
    result = run_program(raw, Limits(timeout_s=3.0, guard=False, start=how))
    assert result.status == "failed" and "unreachable" in result.stderr_tail.lower()
    assert accepted == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@STARTS
def test_timeout_kills_the_whole_process_group_and_escapees(how):
    program = (
        "import os, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "print('child', pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    result = run_program(program, Limits(timeout_s=1.5, guard=False, start=how))
    assert result.status == "timeout"
    child = int(result.stdout_tail.split()[-1])
    deadline = time.monotonic() + 2
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


@STARTS
def test_clean_environment_and_own_work_dir(how):
    program = (
        "import os\n"
        "assert set(os.environ) <= {'PATH', 'LANG', 'HOME', 'TMPDIR', 'PYTHONHASHSEED',"
        " 'PYTHONDONTWRITEBYTECODE', 'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS',"
        " 'MKL_NUM_THREADS', 'LC_CTYPE'}, sorted(os.environ)\n"
        "assert os.environ['HOME'] == os.getcwd()\n"
        "print(os.getcwd())\n"
    )
    a, b = run_programs([program, program], fast(how))
    assert a.passed and b.passed, (a.stderr_tail, b.stderr_tail)
    assert a.stdout_tail.strip() != b.stdout_tail.strip()
    assert not os.path.exists(a.stdout_tail.strip())


@STARTS
def test_bad_input_never_raises(how):
    assert run_program("x = '\x00'\0\n", fast(how)).status == "failed"
    assert run_program("raise SystemExit(3)\n", fast(how)).status == "failed"
    assert run_programs([], fast(how)) == []
    huge = run_program("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", fast(how))
    assert huge.status in ("failed", "timeout") and len(huge.stdout_tail) <= 2000
