"""The typer apps (`bench` and its `list` group), the shared console, and the console entry point
that turns bad input into one line on stderr and exit code 2."""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console

from harness.ground.errors import BenchError

app = typer.Typer(
    help="PEFT benchmark and ablation harness for diffusion LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
list_app = typer.Typer(
    help="List what the harness knows: methods, tasks, models.", no_args_is_help=True
)
app.add_typer(list_app, name="list")
console = Console()


def _quiet_libraries() -> None:
    """Our own progress view replaces the libraries' per-file bars and deprecation chatter. The
    environment variable carries it to the executors' worker processes (spawned: they never run
    this function), whose transformers would otherwise print a "Loading weights" bar per cell."""
    import os
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def main() -> None:
    """Console entry point: bad input becomes one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # cells log INFO to their own log.txt only
        handler.setLevel(logging.WARNING)
    _quiet_libraries()
    try:
        app()
    except BenchError as err:
        from rich.markup import escape

        Console(stderr=True).print(
            f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
