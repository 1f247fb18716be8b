"""Average-cost bookkeeping (core/positions.py), the one the machine, the journal's round trips and the
simulator's account share: what it realizes plus what it holds at its average is the cash flow."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from breakout_bot.core.positions import apply_fill

QTY = st.integers(min_value=-300, max_value=300).filter(bool).map(Decimal)
PRICE = st.integers(min_value=1, max_value=100_000).map(lambda c: Decimal(c) / 100)


@given(st.lists(st.tuples(QTY, PRICE), min_size=1, max_size=30), PRICE)
def test_realized_plus_held_at_its_average_is_the_cash_flow(
    fills: list[tuple[Decimal, Decimal]], mark: Decimal
) -> None:
    position, average, realized_total = Decimal(0), None, Decimal(0)
    cash = Decimal(0)
    for qty, price in fills:
        position, average, realized = apply_fill(position, average, qty, price)
        realized_total += realized or 0
        cash -= qty * price
        assert (average is None) == (position == 0)
    held = position * (mark - average) if average is not None else Decimal(0)
    # Exact but for the average's division (Decimal's 28 digits).
    assert abs(realized_total + held - (cash + position * mark)) <= Decimal("1e-18") * (1 + abs(cash))


def test_opening_adding_reducing_and_flipping() -> None:
    assert apply_fill(Decimal(0), None, Decimal(100), Decimal("10")) == (Decimal(100), Decimal("10"), None)
    assert apply_fill(Decimal(100), Decimal("10"), Decimal(100), Decimal("12")) == (200, Decimal("11"), None)
    assert apply_fill(Decimal(200), Decimal("11"), Decimal(-50), Decimal("13")) == (150, Decimal("11"), 100)
    assert apply_fill(Decimal(150), Decimal("11"), Decimal(-150), Decimal("10")) == (0, None, -150)
    # through zero: the rest opens at the fill's price
    assert apply_fill(Decimal(-20), Decimal("5"), Decimal(50), Decimal("4")) == (30, Decimal("4"), 20)
    assert apply_fill(100.0, 10.0, -100.0, 10.5) == (0.0, None, 50.0)  # floats too (the simulator's account)
