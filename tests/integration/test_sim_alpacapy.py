"""alpaca-py's own clients, used as its users use them (typed requests, pydantic models, its run loop),
against a SimServer on 127.0.0.1: the simulator speaks what alpaca-py parses (the bot itself uses
alpaca-py's raw mode: tests/integration/test_alpaca_sim.py). Skipped where alpaca-py is not installed."""

from __future__ import annotations

import datetime as dt
import queue
import threading
from typing import Any

import pytest
from waiting import wait_for

pytest.importorskip("alpaca")
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestBarRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    GetCalendarRequest,
    GetOrdersRequest,
    MarketOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)
from alpaca.trading.stream import TradingStream

from breakout_bot.core.model import NEW_YORK as NY
from breakout_bot.sim import SimServer

pytestmark = pytest.mark.integration


def clients(server: SimServer) -> tuple[TradingClient, StockHistoricalDataClient]:
    url = server.base_url
    return (
        TradingClient("simkey", "simsecret", url_override=url),
        StockHistoricalDataClient("simkey", "simsecret", url_override=url),
    )


def bracket(symbol: str, px: float, tp: float, sl: float, cid: str) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol=symbol,
        qty=100,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.DAY,
        order_class=OrderClass.BRACKET,
        take_profit=TakeProfitRequest(limit_price=round(px + tp, 2)),
        stop_loss=StopLossRequest(stop_price=round(px - sl, 2)),
        client_order_id=cid,
    )


def test_rest_through_alpaca_py_models(server: SimServer) -> None:
    trading, data = clients(server)
    assert trading.get_account().status.value == "ACTIVE"
    clock = trading.get_clock()
    assert not clock.is_open and clock.next_open == dt.datetime(2024, 3, 4, 9, 30, tzinfo=NY)
    days = trading.get_calendar(GetCalendarRequest(start=dt.date(2024, 3, 4), end=dt.date(2024, 3, 8)))
    assert [d.date for d in days] == [dt.date(2024, 3, d) for d in (4, 5, 6, 7, 8)]
    assert trading.get_asset("AAPL").shortable
    with pytest.raises(APIError) as err:
        trading.get_open_position("AAPL")
    assert (err.value.status_code, err.value.code) == (404, 40410000)

    server.clock.advance_to(dt.datetime(2024, 3, 4, 9, 45, 30, tzinfo=NY))
    bars = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="AAPL",
            timeframe=TimeFrame.Minute,
            start=dt.datetime(2024, 3, 4, 9, 30, tzinfo=NY),
            feed=DataFeed.SIP,  # every minute has a bar (IEX has none for a minute without an IEX print)
        )
    )["AAPL"]
    assert len(bars) == 15 and bars[-1].timestamp == dt.datetime(2024, 3, 4, 9, 44, tzinfo=NY)
    latest = data.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols="AAPL", feed=DataFeed.IEX))
    px = latest["AAPL"].close

    order = trading.submit_order(bracket("AAPL", px, 5.0, 5.0, "apy-rest-1"))  # qty and prices as floats
    assert order.order_class == OrderClass.BRACKET and order.qty == "100"
    assert [leg.status for leg in order.legs or []] == [OrderStatus.HELD, OrderStatus.HELD]
    listed = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True, symbols=["AAPL"]))
    assert [o.id for o in listed] == [order.id] and len(listed[0].legs or []) == 2
    with pytest.raises(APIError) as err:
        trading.submit_order(bracket("AAPL", px, 5.0, 5.0, "apy-rest-1"))
    assert (err.value.status_code, err.value.code) == (422, 40010001)
    assert trading.get_order_by_client_id("apy-rest-1").id == order.id


class StreamThread:
    """alpaca-py's TradingStream on its own thread (its run loop), updates into a queue."""

    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.stream = TradingStream(
            "simkey", "simsecret", url_override=f"{server.base_url.replace('http', 'ws')}/stream"
        )
        self.updates: queue.Queue[Any] = queue.Queue()
        self.stream.subscribe_trade_updates(self.on_update)
        self.thread = threading.Thread(target=self.stream.run, daemon=True)

    async def on_update(self, update: Any) -> None:
        self.updates.put(update)

    def stop(self) -> None:
        self.stream.stop()
        self.server.control.drop_streams("all")  # wakes its 5 s recv wait
        self.thread.join(10)


def test_trade_updates_parse_as_alpaca_py_models(server: SimServer) -> None:
    """Every event, `new` included, is a TradeUpdate: alpaca-py drops an event without `timestamp`."""
    trading, data = clients(server)
    stream = StreamThread(server)
    stream.thread.start()
    try:
        wait_for(lambda: any(c.listening for c in server.sockets.trading))
        server.clock.advance_to(dt.datetime(2024, 3, 4, 9, 45, tzinfo=NY))
        px = data.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols="AAPL", feed=DataFeed.IEX))
        parent = trading.submit_order(bracket("AAPL", px["AAPL"].close, 20.0, 20.0, "apy-stream-1"))
        server.clock.advance(60)
        got = [stream.updates.get(timeout=10) for _ in range(4)]
    finally:
        stream.stop()
    # In the session an order is pending_new, then new; once the parent fills, the take-profit goes new
    # and the stop-loss stays held (docs/simulator.md, "How the simulator matches Alpaca").
    assert [(u.event, u.order.id == parent.id) for u in got[:3]] == [
        ("pending_new", True),
        ("new", True),
        ("fill", True),
    ]
    assert [(u.event, u.order.type.value) for u in got[3:]] == [("new", "limit")]  # the take-profit
    assert all(u.timestamp.tzinfo is not None for u in got)
    fill = got[2]
    assert fill.qty == 100 and fill.price and fill.execution_id is not None
