"""`bench`: a thin typer layer over the Python API (every command is a function you can import).

The commands are grouped by what they do: `models` (pretrain, sample), `runs` (run, report; the
dry run's plan in `dry_run`), `interop` (score, eval, export) and `listing` (list ...); `app`
holds the typer apps and the entry point. They are imported here in the order `bench --help`
lists them.
"""

# typer lists commands in the order they are registered, so these imports keep their order
from harness.cli.app import app, console, list_app, main

# isort: split
from harness.cli.models import pretrain, sample

# isort: split
from harness.cli.runs import LAST_RUN, RUNS_ROOT, _grid_spec, report, run

# isort: split
from harness.cli.interop import eval_cmd, export_cmd, score

# isort: split
from harness.cli.listing import list_methods_cmd, list_models, list_presets_cmd, list_tasks_cmd

__all__ = [
    "LAST_RUN",
    "RUNS_ROOT",
    "_grid_spec",
    "app",
    "console",
    "eval_cmd",
    "export_cmd",
    "list_app",
    "list_methods_cmd",
    "list_models",
    "list_presets_cmd",
    "list_tasks_cmd",
    "main",
    "pretrain",
    "report",
    "run",
    "sample",
    "score",
]
