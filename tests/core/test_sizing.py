"""Position sizing: fixed quantity (the guide) or risk_pct of equity at the stop."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from breakout_bot.core.events import Action, BarClosed, Reconciled, SubmitBracket, Tick
from breakout_bot.core.machine import step
from breakout_bot.core.model import Bar, Session
from breakout_bot.core.params import Params
from breakout_bot.core.state import initial_state
from breakout_bot.core.strategy import position_size

NY = ZoneInfo("America/New_York")


def test_fixed_quantity_without_risk_pct() -> None:
    assert position_size(100, None, 50_000.0, 100.0, Decimal("99.00")) == 100


def test_risk_pct_sizes_from_the_stop_distance() -> None:
    # 1 % of 100,000 = 1,000 at risk; a 0.50 stop distance → 2,000 shares.
    assert position_size(100, 1.0, 100_000.0, 100.0, Decimal("99.50")) == 2000
    assert position_size(100, 0.5, 10_000.0, 50.0, Decimal("50.30")) == 166  # 50 / 0.30, rounded down


def test_no_equity_or_no_distance_trades_nothing() -> None:
    assert position_size(100, 1.0, 0.0, 100.0, Decimal("99")) == 0
    assert position_size(100, 1.0, 10_000.0, 100.0, Decimal("100")) == 0


@given(
    equity=st.floats(1_000, 10_000_000),
    risk=st.floats(0.01, 10),
    entry=st.floats(1, 2_000),
    distance_pct=st.floats(0.05, 20),
)
def test_risk_never_exceeds_budget(equity: float, risk: float, entry: float, distance_pct: float) -> None:
    stop = Decimal(str(round(entry * (1 - distance_pct / 100), 2)))
    qty = position_size(100, risk, equity, entry, stop)
    distance = abs(entry - float(stop))
    assert qty >= 0
    assert qty * distance <= equity * risk / 100 + 1e-6
    if distance > 0:
        assert (qty + 1) * distance > equity * risk / 100 - 1e-6


def _session() -> Session:
    day = date(2024, 3, 4)
    return Session(day, datetime(2024, 3, 4, 9, 30, tzinfo=NY), datetime(2024, 3, 4, 16, 0, tzinfo=NY))


def test_machine_sizes_entries_by_equity() -> None:
    session = _session()
    params = Params(risk_pct=1.0)
    state = initial_state("AAPL", params)
    state, _ = step(
        state,
        Reconciled(
            now=session.open - timedelta(minutes=5),
            session=session,
            next_open=session.open + timedelta(days=1),
            position_qty=Decimal(0),
            equity=100_000.0,
        ),
    )
    actions: list[Action] = []
    for i in range(11):
        t = session.open + timedelta(minutes=i)
        close = 101.0 if i == 10 else 100.0  # ten quiet bars 99.5-100.5, then a close above the high
        state, actions = step(state, BarClosed(Bar(t, 100.0, 100.5 if i < 10 else 101.0, 99.5, close)))
        state, more = step(state, Tick(t + timedelta(minutes=1)))
        actions += more
    orders = [a for a in actions if isinstance(a, SubmitBracket)]
    assert len(orders) == 1
    order = orders[0]
    # Box 99.5-100.5, range 1.0: long stop = 99.50, 1 % of 100,000 at risk / 1.00 = 1,000 shares.
    assert order.stop_price == Decimal("99.50")
    assert order.qty == 1000
    assert replace(params, risk_pct=None).qty == 100
