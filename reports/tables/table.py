"""The table object every report section builds, and its markdown, CSV and rich renderers."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

NOT_RUN = "—"


# -- the table object and its renderers -------------------------------------------------------
@dataclass
class Table:
    key: str  # file-name stem
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    bold: list[list[bool]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_row(self, cells: list[str], bold: list[bool] | None = None) -> None:
        self.rows.append(cells)
        self.bold.append(bold or [False] * len(cells))

    def to_markdown(self) -> str:
        def esc(s: str) -> str:
            return s.replace("|", "\\|")

        out = ["| " + " | ".join(esc(c) for c in self.columns) + " |"]
        out.append("|" + "|".join([" --- "] + [" ---: "] * (len(self.columns) - 1)) + "|")
        for cells, bold in zip(self.rows, self.bold, strict=True):
            shown = [
                f"**{esc(c)}**" if b and c else esc(c) for c, b in zip(cells, bold, strict=True)
            ]
            out.append("| " + " | ".join(shown) + " |")
        return "\n".join(out)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        w.writerows(self.rows)
        return buf.getvalue()

    def to_rich(self):  # -> rich.table.Table
        from rich.table import Table as RichTable

        t = RichTable(title=self.title, show_lines=False)
        for i, c in enumerate(self.columns):
            t.add_column(c, justify="left" if i == 0 else "right")
        for cells, bold in zip(self.rows, self.bold, strict=True):
            t.add_row(*[f"[bold]{c}[/bold]" if b else c for c, b in zip(cells, bold, strict=True)])
        return t
