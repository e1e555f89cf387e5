"""The rich live view of a running grid: grid totals with ETA, the running cell's progress (when
it runs in this process) and, with several workers, one row per worker: its cell, for how long,
and what it has done so far.

Where there is no terminal to redraw (a log file, CI, ``--no-progress``) the view prints one line
per finished cell instead, so that a grid of many minutes is never silent."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.run.cell import Monitor


@dataclass
class WorkerRow:
    cell: str = ""
    since: float = 0.0
    done: int = 0
    failed: int = 0
    retried: int = 0


class WorkerTable:
    """Rebuilt at every refresh, so the elapsed times tick."""

    def __init__(self, rows: dict[str, WorkerRow]) -> None:
        self.rows = rows

    def __rich__(self):
        from rich.table import Table

        table = Table("worker", "cell", "for", "done", "failed", "died", box=None, padding=(0, 1))
        if len(self.rows) < 2:
            return Group()
        now = time.monotonic()
        for name, row in sorted(self.rows.items()):
            elapsed = f"{now - row.since:.0f} s" if row.cell else ""
            table.add_row(
                name, row.cell or "[dim]idle[/dim]", elapsed, str(row.done), str(row.failed),
                str(row.retried),
            )  # fmt: skip
        return table


class LiveView(Monitor):
    def __init__(self, total: int, console: Console) -> None:
        self.console = console
        self.grid = Progress(
            TextColumn("[bold]grid[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.cell = Progress(
            TextColumn("  {task.fields[cell]} [cyan]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
        )
        self.total, self.done, self.failed, self.running = total, 0, 0, 0
        self.finished = 0  # done, failed or finished by another run
        self.grid_task = self.grid.add_task("grid", total=max(total, 1), status=self._status())
        self.cell_task = self.cell.add_task("waiting", total=1, cell="", info="")
        self.current = ""
        self.workers: dict[str, WorkerRow] = {}
        self.lines = False  # one line per finished cell (no live display)
        self.started: dict[str, float] = {}

    def _status(self) -> str:
        remaining = self.total - self.done - self.failed
        return (
            f"[green]{self.done} done[/green] [red]{self.failed} failed[/red] "
            f"[yellow]{self.running} running[/yellow] {remaining} remaining"
        )

    def renderable(self) -> Group:
        return Group(self.grid, self.cell, WorkerTable(self.workers))

    def _worker(self, event: str, job) -> None:
        name = getattr(job, "worker", None)
        if not name:
            return
        row = self.workers.setdefault(name, WorkerRow())
        if event == "start":
            row.cell, row.since = job.cell_id, time.monotonic()
            return
        row.cell = ""
        if event == "done":
            row.done += 1
        elif event == "failed":
            row.failed += 1
        elif event == "retry":
            row.retried += 1

    def expecting(self, jobs: int) -> LiveView:
        """Count the cells the runner will run (a resumed grid skips its finished ones) rather
        than every cell of the grid; returns the view (the runner's listener)."""
        self.total = jobs
        self.grid.update(self.grid_task, total=max(jobs, 1), status=self._status())
        return self

    def _line(self, event: str, job, detail) -> None:
        """``done 3/21 lora-synth_math-r8-s0-… in 41 s (worker w1)``: a finished cell, for a
        log or CI where the live display cannot redraw."""
        since = self.started.pop(job.cell_id, None)
        took = f" in {time.monotonic() - since:.0f} s" if since is not None else ""
        worker = getattr(job, "worker", None)
        where = f" (worker {worker})" if worker else ""
        why = f": {str(detail).splitlines()[0]}" if detail and event != "done" else ""
        self.console.print(
            f"{event} {self.finished}/{self.total} {job.cell_id}{took}{where}{why}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

    # Listener
    def __call__(self, event: str, job, detail) -> None:
        self._worker(event, job)
        if event == "start":
            self.started[job.cell_id] = time.monotonic()
            self.running += 1
            self.current = job.cell_id
        elif event == "retry":
            self.running = max(0, self.running - 1)
            self.console.print(f"[yellow]retrying[/yellow] {job.cell_id}: {detail}")
        elif event == "skipped":
            self.finished += 1
            self.grid.advance(self.grid_task)
            if self.lines:
                self._line("finished by another run", job, None)
        else:
            self.running = max(0, self.running - 1)
            self.finished += 1
            if event == "done":
                self.done += 1
            else:
                self.failed += 1
            if self.lines:
                self._line(event, job, detail)
            elif event != "done":
                self.console.print(f"[red]failed[/red] {job.cell_id}: {detail}")
            self.grid.advance(self.grid_task)
        self.grid.update(self.grid_task, status=self._status())

    # Monitor
    def phase(self, name: str, total: int) -> None:
        self.cell.reset(self.cell_task, total=max(total, 1), description=name)
        self.cell.update(self.cell_task, cell=self.current, info="")

    def update(self, done: int, **info) -> None:
        text = " ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()
        )
        self.cell.update(self.cell_task, completed=done, info=text)


@contextmanager
def live_view(total: int, console: Console, enabled: bool = True):
    view = LiveView(total, console)
    if not enabled:  # no terminal to redraw: a line per finished cell
        view.lines = True
        yield view
        return
    with Live(view.renderable(), console=console, refresh_per_second=4, transient=False):
        yield view
