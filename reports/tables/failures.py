"""The table of failed and unfinished cells, with the last line of each error."""

from __future__ import annotations

from reports.tables.table import Table
from results.schema import Record


def failures_table(records: list[Record]) -> Table:
    t = Table(
        key="failures",
        title="Failed and unfinished cells",
        columns=["cell", "status", "method", "task", "seed", "axes", "error"],
    )
    for r in sorted(records, key=lambda r: (r.status, r.method, r.task, r.seed)):
        if r.status == "done":
            continue
        err = (r.error or "").strip().splitlines()
        axes = ", ".join(f"{k}={v}" for k, v in r.axes.items())
        if r.config.get("rank") is not None:
            axes = ", ".join(x for x in (f"rank={r.config['rank']}", axes) if x)
        t.add_row(
            [
                r.cell_id,
                r.status,
                r.method,
                r.task if r.eval_tasks == [r.task] else f"{r.train_data}: {','.join(r.eval_tasks)}",
                str(r.seed),
                axes,
                err[-1] if err else "",
            ]
        )
    return t
