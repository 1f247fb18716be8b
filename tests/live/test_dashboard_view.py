"""The dashboard's view model (live/dashboard/view.py): pure, state and journal in, the page's JSON out."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from breakout_bot.core.events import SubmitBracket
from breakout_bot.core.model import NEW_YORK, Bar, Box, Session
from breakout_bot.core.state import (
    ACTIVE_TRADE,
    ORDER_SENT,
    ORDER_SUBMITTED,
    SEARCHING,
    evolve,
    initial_state,
)
from breakout_bot.journal import FillRecord
from breakout_bot.live.dashboard import view

T = datetime(2024, 3, 4, 10, 0, tzinfo=NEW_YORK)
SESSION = Session(T.date(), T.replace(hour=9, minute=30), T.replace(hour=16))
BOX = Box(185.0, 184.0, 1.0, 184.9, False, T - timedelta(minutes=10), T)
ENTRY = SubmitBracket("AAPL", "buy", 100, Decimal("184.00"), Decimal("186.00"), "AAPL-20240304-1", BOX)


def bar(minute: int, close: float = 185.0) -> Bar:
    return Bar(
        T.replace(hour=9, minute=30) + timedelta(minutes=minute), close, close + 0.1, close - 0.1, close
    )


def fill(fid: str, side: str, qty: str, price: str, when: datetime, leg: str = "entry") -> FillRecord:
    return FillRecord(
        fid, "o-" + fid, "c-" + fid, "AAPL", side, qty, price, when.isoformat(), leg=leg, source="rest"
    )


def test_searching_with_a_box_shows_phase_box_and_no_orders() -> None:
    state = evolve(initial_state("AAPL"), phase=SEARCHING, session=SESSION, box=BOX, bars=(bar(1), bar(2)))
    v = view.symbol_view(state, [bar(0), bar(1), bar(2)], [])
    assert v["phase"] == "searching" and v["phase_words"] == "waiting for a breakout"
    assert v["box"] == {
        "high": 185.0,
        "low": 184.0,
        "range": 1.0,
        "floored": False,
        "start": "2024-03-04T09:50:00",
        "end": "2024-03-04T10:00:00",
    }
    assert v["working_orders"] == [] and v["stop"] is None and v["take_profit"] is None
    assert [b["t"] for b in v["bars"]] == [
        "2024-03-04T09:30:00",
        "2024-03-04T09:31:00",
        "2024-03-04T09:32:00",
    ]


def test_an_entry_in_flight_is_the_working_order() -> None:
    base = evolve(initial_state("AAPL"), session=SESSION, entry=ENTRY)
    sent = view.working_orders(evolve(base, phase=ORDER_SENT))
    working = view.working_orders(evolve(base, phase=ORDER_SUBMITTED))
    assert [(o["order"], o["side"], o["qty"], o["status"]) for o in sent] == [
        ("entry", "buy", 100, "sent, no answer yet")
    ]
    assert working[0]["status"] == "accepted, working"


def test_in_a_trade_the_brackets_legs_are_working_with_their_levels() -> None:
    state = evolve(
        initial_state("AAPL"),
        phase=ACTIVE_TRADE,
        session=SESSION,
        entry=ENTRY,
        position_qty=Decimal(100),
        avg_entry_price=Decimal("185.05"),
    )
    v = view.symbol_view(state, [], [])
    assert v["stop"] == 184.0 and v["take_profit"] == 186.0
    assert v["position"] == {"qty": 100.0, "avg_entry_price": 185.05, "text": "long 100 @ 185.05"}
    assert [(o["order"], o["side"], o["type"], o["price"]) for o in v["working_orders"]] == [
        ("stop-loss", "sell", "stop", 184.0),
        ("take-profit", "sell", "limit", 186.0),
    ]
    assert v["box"]["high"] == 185.0  # the box it broke (the machine's own is gone in a trade)
    # A position without a working stop, or one being closed, has no legs to show.
    assert view.working_orders(evolve(state, unprotected=True)) == []
    assert view.working_orders(evolve(state, flattened=True)) == []
    short = evolve(state, position_qty=Decimal(-100))
    assert {o["side"] for o in view.working_orders(short)} == {"buy"}


def test_run_view_takes_each_symbols_fills_of_its_session_and_the_pnl() -> None:
    state = evolve(initial_state("AAPL"), phase=SEARCHING, session=SESSION, realized_pnl_today=100.0)
    fills = [
        fill("1", "buy", "100", "185.10", T),
        fill("2", "sell", "100", "186.10", T + timedelta(minutes=5), leg="take_profit"),
        fill("0", "buy", "100", "180", T - timedelta(days=1)),  # yesterday: not today's
    ]
    page = view.run_view(T, True, Decimal("100100"), [state], {"AAPL": [bar(0)]}, fills, simulated=True)
    json.dumps(page, allow_nan=False)  # the page is JSON
    assert page["kind"] == "run" and page["equity"] == 100100.0 and page["realized_text"] == "+100.00"
    (aapl,) = page["symbols"]
    assert [(f["side"], f["price"], f["leg"]) for f in aapl["fills"]] == [
        ("buy", 185.1, "entry"),
        ("sell", 186.1, "take-profit"),
    ]
    assert [(t["direction"], t["realized"]) for t in aapl["trades"]] == [("long", 100.0)]


def test_day_view_says_where_no_bars_are_cached() -> None:
    fills = [
        fill("1", "buy", "100", "185.10", T),
        fill("2", "sell", "100", "184.10", T + timedelta(minutes=5), leg="stop_loss"),
        fill("3", "buy", "100", "190", T + timedelta(days=1)),
    ]
    assert view.journal_days(fills) == ["2024-03-05", "2024-03-04"]
    day = view.day_view(date(2024, 3, 4), fills, {"AAPL": None})
    (aapl,) = day["symbols"]
    assert aapl["bars_cached"] is False and aapl["bars"] == []
    assert day["realized"] == -100.0 and [f["leg"] for f in aapl["fills"]] == ["entry", "stop-loss"]
    with_bars = view.day_view(date(2024, 3, 4), fills, {"AAPL": [bar(0), bar(1)]})
    assert with_bars["symbols"][0]["bars_cached"] is True and len(with_bars["symbols"][0]["bars"]) == 2


prices = st.decimals(min_value=Decimal("1"), max_value=Decimal("500"), places=2)


@given(st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 300), prices), max_size=12))
def test_fills_are_in_time_order_and_trades_sum_to_the_round_trips_pnl(
    rows: list[tuple[str, int, Decimal]],
) -> None:
    records = [
        fill(str(i), side, str(qty), str(price), T + timedelta(minutes=(7 * i) % 11, seconds=i))
        for i, (side, qty, price) in enumerate(rows)
    ]
    shown = view.fills_view(records)
    assert [f["time"] for f in shown] == sorted(f["time"] for f in shown)
    assert len(shown) == len(records)
    trades = view.trades_view(records)
    cash = sum(
        (Decimal(r.qty) * Decimal(r.price) * (1 if r.side == "sell" else -1) for r in records), Decimal(0)
    )
    if sum(Decimal(r.qty) * (1 if r.side == "buy" else -1) for r in records) == 0:
        # Flat at the end: the realized P&L of the trips is the cash the fills made.
        assert abs(sum(Decimal(str(t["realized"])) for t in trades) - cash) < Decimal("0.01") * max(
            1, len(trades)
        )
