"""Without a terminal (a log file, CI, --no-progress) the run view prints one line per finished
cell, so that a grid of many minutes is never silent; in a terminal the live display does."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from harness.run.live import live_view


def _events(view) -> None:
    a, b, c = (SimpleNamespace(cell_id=f"lora-synth_math-r8-s{i}-x", worker=None) for i in range(3))
    view = view.expecting(3)  # the runner's count of cells to run
    view("start", a, None)
    view.phase("train", 10)
    view.update(5, loss=0.5)
    view("done", a, None)
    view("start", b, None)
    view("failed", b, "RuntimeError: out of memory\ntraceback ...")
    view("skipped", c, None)


def test_a_line_per_finished_cell_when_stdout_is_not_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    assert not console.is_terminal
    with live_view(5, console, enabled=console.is_terminal) as view:
        _events(view)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("done 1/3 lora-synth_math-r8-s0-x in ")
    assert lines[0].endswith(" s")
    assert lines[1].startswith("failed 2/3 lora-synth_math-r8-s1-x in ")
    assert lines[1].endswith(": RuntimeError: out of memory")  # the first line of the error
    assert lines[2] == "finished by another run 3/3 lora-synth_math-r8-s2-x"


def test_a_worker_is_named_on_its_cells_line():
    out = io.StringIO()
    with live_view(1, Console(file=out, force_terminal=False), enabled=False) as view:
        job = SimpleNamespace(cell_id="nara-synth_code-r8-s0-y", worker="w1")
        view("start", job, None)
        view("done", job, None)
    assert out.getvalue().rstrip().endswith("(worker w1)")


def test_the_live_display_prints_no_cell_lines():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)
    with live_view(3, console, enabled=True) as view:
        _events(view)
    text = out.getvalue()
    assert "done 1/3" not in text
    assert "failed" in text  # a failure is still printed above the display
