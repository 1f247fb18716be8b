"""The backtest's in-process broker (backtest/broker.py): order snapshots as Alpaca would report them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from breakout_bot.backtest.broker import BacktestBroker
from breakout_bot.core.events import SubmitBracket
from breakout_bot.core.model import NEW_YORK, OrderEvent, OrderStatus, OrderType
from breakout_bot.core.ticks import fill_price

NOW = dt.datetime(2024, 3, 5, 9, 40, tzinfo=NEW_YORK)
T0 = int(NOW.timestamp()) + 60  # the next bar's start


def test_an_entry_snapshot_follows_its_legs_through_the_trade() -> None:
    """Snapshots are reused while an order is unchanged: the parent's must still change with its legs."""
    broker = BacktestBroker("X")
    request = SubmitBracket("X", "buy", 100, Decimal("99.75"), Decimal("100.35"), "bb-X-20240305-1")
    (new,) = broker.submit_bracket(request, NOW)
    entry_id = new.order.id
    assert new.event is OrderEvent.ACCEPTED
    assert [leg.status for leg in new.order.legs] == [OrderStatus.HELD, OrderStatus.HELD]
    assert broker.get_order(entry_id) is broker.get_order(entry_id)  # unchanged: one snapshot

    (fill,) = broker.on_bar(T0, 100.12, 100.20, 100.10)
    assert fill.event is OrderEvent.FILL and fill.order.status is OrderStatus.FILLED
    assert fill.price == Decimal("100.12")
    after_fill = broker.get_order(entry_id)
    assert [leg.status for leg in after_fill.legs] == [OrderStatus.NEW, OrderStatus.NEW]  # legs active now

    take_fill, stop_cancel = broker.on_bar(T0 + 60, 100.20, 100.40, 100.15)
    assert (take_fill.event, take_fill.order.type, take_fill.price) == (
        OrderEvent.FILL,
        OrderType.LIMIT,
        Decimal("100.35"),
    )
    assert (stop_cancel.event, stop_cancel.order.type) == (OrderEvent.CANCELED, OrderType.STOP)
    done = broker.get_order(entry_id)
    assert done.status is OrderStatus.FILLED
    assert [leg.status for leg in done.legs] == [OrderStatus.FILLED, OrderStatus.CANCELED]
    assert done.legs[0].filled_avg_price == Decimal("100.35")
    assert broker.list_open_orders("X") == [] and broker.get_position_qty("X") == 0


@settings(max_examples=3000)
@given(
    st.one_of(
        st.integers(min_value=-(10**14), max_value=10**14).map(lambda n: n / 10**4),
        st.integers(min_value=1, max_value=10**12).map(lambda n: n / 10**6),
        st.tuples(st.integers(1, 10**8), st.integers(1, 10**8)).map(lambda ab: ab[0] / 100 + ab[1] / 10**7),
        st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
    )
)
def test_fill_prices_have_the_digits_of_their_definition(price: float) -> None:
    """fill_price's fast path equals Decimal(repr(round(x, 4))), digits included (journal and reports show them)."""
    assert str(fill_price(price)) == str(Decimal(repr(round(price, 4))))
