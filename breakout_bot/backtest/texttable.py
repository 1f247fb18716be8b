"""Plain-text tables drawn as rich draws them (its default heavy-headed box), ~50x faster.

The backtest's report prints up to 200 trades: rich measures and lays out every cell (and parses its
markup) for ~0.1-0.2 s of a backtest that otherwise takes well under a second. These tables only
ever hold plain single-width text, so they are drawn directly: the same characters, byte for byte, as
rich's Table rendered without colour (tests/backtest/test_texttable.py holds the two equal). A table
wider than the console (which rich would wrap) or a title wider than its table goes to rich.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Sequence
from typing import Literal

Justify = Literal["left", "right"]


def _narrow(text: str) -> bool:
    """Every character one column wide (no East Asian wide ones, no combining marks, no controls)."""
    return all(
        unicodedata.east_asian_width(ch) not in ("W", "F")
        and not unicodedata.combining(ch)
        and ch.isprintable()
        for ch in text
    )


def render(
    title: str | None,
    columns: Sequence[tuple[str, Justify]],
    rows: Sequence[Sequence[str]],
    *,
    show_header: bool = True,
    width: int = 140,
) -> str:
    """The table (title above, left-justified), as rich.Table(title_justify="left") prints it on a
    console of `width` columns without colour; ends with a newline."""
    cells = [list(r) + [""] * (len(columns) - len(r)) for r in rows]
    texts = [name for name, _ in columns] + [c for r in cells for c in r] + [title or ""]
    widths = [
        max([len(name)] * show_header + [len(r[i]) for r in cells] or [0])
        for i, (name, _) in enumerate(columns)
    ]
    total = sum(widths) + 3 * len(columns) + 1
    if (
        total > width
        or (title is not None and len(title) > total)
        or min(widths, default=0) == 0  # an empty column: rich has its own ideas
        or not all(map(_narrow, texts))
    ):
        return _rich(title, columns, cells, show_header=show_header, width=width)

    def line(values: Sequence[str], bar: str) -> str:
        parts = [
            (v.rjust(w) if justify == "right" else v.ljust(w))
            for v, w, (_, justify) in zip(values, widths, columns, strict=True)
        ]
        return bar + " " + f" {bar} ".join(parts) + " " + bar

    out = []
    if title is not None:
        out.append(title.ljust(total))
    if show_header:
        out.append("┏" + "┳".join("━" * (w + 2) for w in widths) + "┓")
        out.append(line([name for name, _ in columns], "┃"))
        out.append("┡" + "╇".join("━" * (w + 2) for w in widths) + "┩")
    else:
        out.append("┌" + "┬".join("─" * (w + 2) for w in widths) + "┐")
    out += [line(r, "│") for r in cells]
    out.append("└" + "┴".join("─" * (w + 2) for w in widths) + "┘")
    return "\n".join(out) + "\n"


def _rich(
    title: str | None,
    columns: Sequence[tuple[str, Justify]],
    rows: Sequence[Sequence[str]],
    *,
    show_header: bool,
    width: int,
) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=show_header)
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for r in rows:
        table.add_row(*r)
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=False, color_system=None, markup=False, emoji=False).print(
        table
    )
    return buf.getvalue()
