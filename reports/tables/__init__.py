"""Paper-style tables from the records frame: main results, costs, paired statistics, failures.

Grid axes are handled in two ways (decided from the data, :func:`layout`):

- a *split* axis has a value in every cell (rank, sampling steps, ``train.lr``, ...): one table
  per combination of split-axis values;
- a *row* axis applies to some methods only (``nara.c_scale`` is absent from LoRA cells): its
  values become sub-rows, e.g. ``nara (nara.c_scale=0.1)``.

Each table is a :class:`Table` (text cells plus a bold mask) rendered to markdown, CSV or rich.
Cells whose primary metric is a fraction are shown in percent. Every expected seed that is
missing, failed or still running is visible in the entry ("n=2 of 3, 1 failed").

One module per job: `table` (the object and its renderers), `layout` (axes, row and group
selection), `main_results`, `costs`, `paired` (statistics), `failures`, `footnotes`, and `units`
(human-readable numbers).
"""

from reports.tables.costs import COSTS, costs_table
from reports.tables.failures import failures_table
from reports.tables.footnotes import footnotes, training_data_notes
from reports.tables.layout import (
    METHOD_ORDER,
    Layout,
    _norm,
    axis_columns,
    fmt_axis,
    groups,
    layout,
    method_order,
    row_keys,
    row_label,
    select_row,
)
from reports.tables.main_results import Entry, average_entry, main_tables, task_entry
from reports.tables.paired import focus_stats_table, paired_tables, seed_tables, stats_tables
from reports.tables.table import NOT_RUN, Table
from reports.tables.units import human_bytes, human_count, human_seconds

__all__ = [
    "COSTS",
    "METHOD_ORDER",
    "NOT_RUN",
    "Entry",
    "Layout",
    "Table",
    "_norm",
    "average_entry",
    "axis_columns",
    "costs_table",
    "failures_table",
    "fmt_axis",
    "focus_stats_table",
    "footnotes",
    "groups",
    "human_bytes",
    "human_count",
    "human_seconds",
    "layout",
    "main_tables",
    "method_order",
    "paired_tables",
    "row_keys",
    "row_label",
    "seed_tables",
    "select_row",
    "stats_tables",
    "task_entry",
    "training_data_notes",
]
