"""The report's tables are drawn directly, and must be exactly what rich's Table draws."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.table import Table

from breakout_bot.backtest.texttable import render

TEXT = st.text(alphabet="abcXYZ 0123456789.,:-…()%", max_size=14)


def rich_text(
    title: str | None, columns: list[tuple[str, str]], rows: list[list[str]], show_header: bool
) -> str:
    table = Table(title=title, title_justify="left", show_header=show_header)
    for name, justify in columns:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(*r)
    buf = io.StringIO()
    Console(file=buf, width=140, force_terminal=False, color_system=None, markup=False, emoji=False).print(
        table
    )
    return buf.getvalue()


@given(
    title=st.none() | st.text(alphabet="abc: 0123456789", min_size=1, max_size=30),
    columns=st.lists(
        st.tuples(TEXT.filter(str.strip), st.sampled_from(["left", "right"])), min_size=1, max_size=6
    ),
    data=st.data(),
    show_header=st.booleans(),
)
def test_drawn_like_rich(title: str | None, columns: list, data: st.DataObject, show_header: bool) -> None:
    rows = data.draw(st.lists(st.lists(TEXT, min_size=len(columns), max_size=len(columns)), max_size=6))
    rows = [[c.strip() for c in r] for r in rows]
    columns = [(name.strip(), justify) for name, justify in columns]
    assert render(title, columns, rows, show_header=show_header) == rich_text(
        title, columns, rows, show_header
    )


def test_too_wide_for_the_console_is_left_to_rich() -> None:
    columns = [("wide", "left")] * 12
    rows = [["x" * 12] * 12]
    assert render("t", columns, rows) == rich_text("t", columns, rows, True)  # rich wraps: same text
