"""roundtrips.todays_realized: what a restarted bot knows of today's P&L from the broker's fills."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from breakout_bot.core.model import NEW_YORK as NY
from breakout_bot.roundtrips import FillLike, todays_realized

T0 = datetime(2024, 3, 5, 9, 41, tzinfo=NY)


def fill(minute: int, side: str, qty: int, price: str) -> FillLike:
    return FillLike("AAPL", side, Decimal(qty), Decimal(price), T0 + timedelta(minutes=minute))


def test_closed_trades_and_the_open_one() -> None:
    fills = [
        fill(0, "buy", 100, "100.80"),
        fill(5, "sell", 100, "99.50"),  # -130
        fill(9, "sell", 50, "99.00"),  # short, partly filled ...
        fill(10, "sell", 50, "99.20"),  # ... average 99.10
        fill(12, "buy", 40, "98.60"),  # covers 40 of 100: +20
    ]
    realized, average = todays_realized(reversed(fills), Decimal(-60))  # any order in
    assert realized == Decimal("-110.00")
    assert average == Decimal("99.10")


def test_flat_means_no_average() -> None:
    assert todays_realized([fill(0, "buy", 10, "5"), fill(1, "sell", 10, "6")], Decimal(0)) == (
        Decimal(10),
        None,
    )
    assert todays_realized([], Decimal(0)) == (Decimal(0), None)


def test_a_position_from_before_today_adds_no_pnl_and_no_price() -> None:
    # Held 100 overnight at an unknown price; today sold 100 of it, then a full long trade of +50.
    fills = [fill(0, "sell", 100, "101.00"), fill(3, "buy", 100, "100.00"), fill(6, "sell", 100, "100.50")]
    assert todays_realized(fills, Decimal(0)) == (Decimal("50.00"), None)
    # Still holding part of the overnight position: its price stays unknown.
    assert todays_realized([fill(0, "sell", 40, "101.00")], Decimal(60)) == (Decimal(0), None)


@given(
    st.lists(
        st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 300), st.integers(9000, 11000)),
        max_size=12,
    )
)
def test_matches_cash_flow_when_the_day_ends_flat(rows: list[tuple[str, int, int]]) -> None:
    """Flat at the end (a final fill closes what is left): realized P&L = the day's cash flow."""
    fills = [fill(i, side, qty, f"{cents / 100:.2f}") for i, (side, qty, cents) in enumerate(rows)]
    position = sum((f.qty if f.side == "buy" else -f.qty for f in fills), Decimal(0))
    if position:
        fills.append(fill(len(fills), "sell" if position > 0 else "buy", int(abs(position)), "100.00"))
    cash = sum((f.qty * f.price * (1 if f.side == "sell" else -1) for f in fills), Decimal(0))
    realized, average = todays_realized(fills, Decimal(0))
    assert average is None
    assert abs(realized - cash) < Decimal("1e-9")
