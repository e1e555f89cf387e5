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

    def to_rich(self, narrow: bool = False):  # -> rich.table.Table
        """A rich table. ``narrow`` (the terminal's main table): no outer frame or column rules,
        the notes as a caption, and a first column that is never cut or wrapped, so that rows
        stay told apart when the terminal is narrow (the other columns wrap first)."""
        from rich import box
        from rich.markup import escape
        from rich.table import Table as RichTable

        if not narrow:
            t = RichTable(title=self.title, show_lines=False)
        else:
            t = RichTable(
                title=self.title,
                caption=escape("\n".join(self.notes)) or None,
                caption_justify="left",
                box=box.SIMPLE_HEAD,
                show_edge=False,
                pad_edge=False,
                collapse_padding=True,
            )
        for i, c in enumerate(self.columns):
            if i == 0 and narrow:
                width = max([len(c), *(len(r[0]) for r in self.rows)])
                t.add_column(c, justify="left", no_wrap=True, min_width=width)
            else:
                t.add_column(c, justify="left" if i == 0 else "right")
        for cells, bold in zip(self.rows, self.bold, strict=True):
            shown = [escape(c) for c in cells]  # a label like nara[core_lr×5] is no markup
            t.add_row(*[f"[bold]{c}[/bold]" if b else c for c, b in zip(shown, bold, strict=True)])
        return t
