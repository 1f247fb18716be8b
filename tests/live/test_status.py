"""The terminal's view (issue 17): values in words, nothing cut at 80 columns, one line per event in a pipe."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from rich.console import Console

from breakout_bot.core.events import SubmitBracket
from breakout_bot.core.model import NEW_YORK, Bar, Box, Session
from breakout_bot.core.state import Phase, State
from breakout_bot.live.runner import RunnerStatus
from breakout_bot.live.status import DayResults, StatusDisplay, money, phase_words, status_fields

DAY = date(2024, 3, 4)
OPEN = datetime(2024, 3, 4, 9, 30, tzinfo=NEW_YORK)
SESSION = Session(DAY, OPEN, OPEN + timedelta(hours=6, minutes=30))
NOW = datetime(2024, 3, 4, 12, 17, 2, tzinfo=NEW_YORK)


def in_trade(symbol: str = "AAPL", qty: int = 100, price: str = "1108.09") -> State:
    box = Box(1108.0, 1107.2, 0.8, 1107.9, False, OPEN, OPEN + timedelta(minutes=10))
    entry = SubmitBracket(
        symbol, "buy" if qty > 0 else "sell", abs(qty), Decimal("1107.20"), Decimal("1108.80"), "bb-1", box
    )
    bar = Bar(NOW - timedelta(minutes=2), 1108.0, 1108.3, 1107.9, 1108.24)
    return State(
        symbol=symbol,
        phase=Phase.ACTIVE_TRADE,
        now=NOW,
        session=SESSION,
        bars=(bar,),
        position_qty=Decimal(qty),
        avg_entry_price=Decimal(price),
        entry=entry,
        entries_sent_today=5,
        realized_pnl_today=-1322.5,
    )


@pytest.mark.parametrize(
    ("state", "words"),
    [
        (State("AAPL", session=SESSION), "waiting for the open (09:30)"),
        (State("AAPL", phase=Phase.SEARCHING), "building the box (0/10 bars)"),
        (State("AAPL", phase=Phase.ORDER_SENT), "entry sent"),
        (State("AAPL", phase=Phase.ORDER_SUBMITTED), "entry working"),
        (in_trade(), "in trade"),
        (
            State("AAPL", phase=Phase.DONE_FOR_THE_DAY, done_reason="daily loss limit 500.00 reached"),
            "done for today: daily loss limit 500.00 reached",
        ),
    ],
)
def test_phases_in_words(state: State, words: str) -> None:
    assert phase_words(state) == words


def test_what_a_trader_wants_to_see() -> None:
    values = status_fields(in_trade())
    assert values["position"] == "long 100 @ 1,108.09"
    assert (values["stop"], values["take-profit"]) == ("1,107.20", "1,108.80")
    assert values["last bar"] == "1,108.24 (12:15)"
    assert values["unrealized"] == "+15.00"  # (1108.24 - 1108.09) x 100
    assert values["realized today"] == "-1,322.50"
    short = status_fields(in_trade(qty=-100, price="1108.50"))
    assert short["position"] == "short 100 @ 1,108.50" and short["unrealized"] == "+26.00"


@pytest.mark.parametrize("symbols", [["AAPL"], ["AAPL", "MSFT", "GOOGL"]])
def test_the_panel_cuts_nothing_at_80_columns(symbols: list[str]) -> None:
    states = tuple(in_trade(s) for s in symbols)
    done = State("TSLA", phase=Phase.DONE_FOR_THE_DAY, done_reason="daily loss limit 500.00 reached")
    status = RunnerStatus(NOW.astimezone(timezone.utc), True, (*states, done), Decimal("101234.56"))
    console = Console(file=io.StringIO(), width=80, color_system=None)
    display = StatusDisplay(stream=io.StringIO(), live=False, simulated=True)
    with console.capture() as capture:
        console.print(display.panel(status))
    text = capture.get()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    words = set(text.split())  # a long value wraps between words, never inside a number
    for needle in (
        "1,108.09",
        "1,107.20",
        "1,108.80",
        "+15.00",
        "-1,322.50",
        "(12:15)",
        "101,234.56",
        "500.00",
    ):
        assert needle in words, needle
    if len(symbols) == 1:
        for needle in ("in trade", "long 100 @ 1,108.09"):
            assert needle in text
    assert "New York (simulated) · trade stream up · equity 101,234.56" in text


def test_a_pipe_gets_one_whole_line_per_change() -> None:
    stream = io.StringIO()
    display = StatusDisplay(stream=stream, live=False)
    state = in_trade()
    status = RunnerStatus(NOW.astimezone(timezone.utc), True, (state,))
    display(status)
    display(status)  # no change: no line
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and len(lines[0]) > 80
    assert lines[0].startswith("2024-03-04 12:17:02 New York · AAPL: in trade · position long 100 @ 1,108.09")
    display.print("x " * 100)  # a banner longer than 80 columns is not wrapped either
    assert stream.getvalue().splitlines()[-1].rstrip() == ("x " * 100).rstrip()


def test_day_results_keep_each_sessions_last_realized_pnl() -> None:
    results = DayResults()
    results(RunnerStatus(NOW, True, (in_trade(),)))
    later = State("AAPL", phase=Phase.DONE_FOR_THE_DAY, session=SESSION, realized_pnl_today=12.5)
    results(RunnerStatus(NOW, True, (later, State("MSFT"))))
    assert results.realized == {DAY: {"AAPL": 12.5}} and results.total() == 12.5


@pytest.mark.parametrize(
    ("value", "shown"),
    [(-0.0, "+0.00"), (Decimal("-0.00"), "+0.00"), (-0.001, "+0.00"), (-0.006, "-0.01"), (0, "+0.00"),
     (1234.5, "+1,234.50"), (-47.5, "-47.50")],
)  # fmt: skip
def test_money_never_shows_a_negative_zero(value: float | Decimal, shown: str) -> None:
    """The first run's panel read "unrealized -0.00" for a short marked at its entry price."""
    assert money(value) == shown
