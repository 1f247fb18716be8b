"""The real alpaca-trade-api client (REST and Stream) against a SimServer on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from waiting import wait_for

pytest.importorskip("alpaca_trade_api")  # tests/integration/test_sim_alpacapy.py: the same with alpaca-py
from alpaca_trade_api.common import URL
from alpaca_trade_api.rest import REST, APIError, TimeFrame
from alpaca_trade_api.stream import Stream

from breakout_bot.core.model import NEW_YORK as NY
from breakout_bot.sim import SimServer

pytestmark = pytest.mark.integration


@pytest.fixture
def api(server: SimServer) -> REST:
    return REST("simkey", "simsecret", URL(server.base_url))


class StreamRunner:
    """alpaca_trade_api.stream.Stream on its own thread, handlers feeding queues."""

    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.stream = Stream(
            "simkey",
            "simsecret",
            base_url=URL(server.base_url),
            data_stream_url=URL(server.base_url),
            data_feed="iex",
        )
        self.updates: queue.Queue[Any] = queue.Queue()
        self.bars: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(target=self.stream.run, daemon=True)

    async def on_update(self, u: Any) -> None:
        self.updates.put(u)

    async def on_bar(self, b: Any) -> None:
        self.bars.put(b)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stream.stop()
        self.server.control.drop_streams("all")  # wakes the client's 5 s recv wait
        self.thread.join(10)

    def collect(self, n: int, q: queue.Queue[Any] | None = None, timeout: float = 10.0) -> list[Any]:
        q = q if q is not None else self.updates
        return [q.get(timeout=timeout) for _ in range(n)]


@pytest.fixture
def stream(server: SimServer) -> Iterator[StreamRunner]:
    runner = StreamRunner(server)
    try:
        yield runner
    finally:
        if runner.thread.is_alive():
            runner.stop()


def test_account_clock_calendar_assets(api: REST, server: SimServer) -> None:
    acct = api.get_account()
    assert acct.status == "ACTIVE" and acct.cash == "100000" and acct.buying_power == "400000"
    clock = api.get_clock()
    assert clock.is_open is False
    assert clock.timestamp == dt.datetime(2024, 3, 4, 9, 25, tzinfo=NY)
    assert clock.next_open == dt.datetime(2024, 3, 4, 9, 30, tzinfo=NY)
    assert str(clock.timestamp.tz) in ("UTC-05:00", "pytz.FixedOffset(-300)") or clock.timestamp.utcoffset()
    server.clock.advance(10 * 60)
    assert api.get_clock().is_open is True
    cal = api.get_calendar("2015-12-23", "2015-12-28")
    assert [f"{c.date:%Y-%m-%d}" for c in cal] == ["2015-12-23", "2015-12-24", "2015-12-28"]
    assert cal[1].close == dt.time(13, 0)
    assets = {a.symbol: a for a in api.list_assets()}
    assert assets["AAPL"].shortable and assets["AAPL"].tradable and assets["AAPL"].easy_to_borrow
    assert not assets["NOSHORT"].shortable and not assets["HALTD"].tradable
    with pytest.raises(APIError) as err:
        api.get_asset("NOPE")
    assert err.value.status_code == 404
    with pytest.raises(APIError) as err:
        api.get_position("AAPL")
    assert (err.value.status_code, err.value.code, str(err.value)) == (
        404,
        40410000,
        "position does not exist",
    )


def test_bars_only_closed_and_paginated(api: REST, server: SimServer) -> None:
    server.clock.advance_to(dt.datetime(2024, 3, 4, 9, 35, 30, tzinfo=NY))
    today = api.get_bars("AAPL", TimeFrame.Minute)
    assert len(today) == 5  # 09:30..09:34 have closed; 09:35 has not
    assert today[-1].t == dt.datetime(2024, 3, 4, 9, 34, tzinfo=NY)
    latest = api.get_latest_bar("AAPL")
    assert latest.c == today[-1].c
    n_before = len(server.exchange.requests)
    many = api.get_bars("AAPL", TimeFrame.Minute, start="2024-01-02", limit=12_000)
    assert len(many) == 12_000
    pages = [r for r in server.exchange.requests[n_before:] if r.path.endswith("/bars")]
    assert len(pages) == 2  # 10 000 + 2 000 through next_page_token
    ts = [b.t for b in many]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    multi = api.get_bars(["AAPL", "MSFT"], TimeFrame.Minute)
    assert sorted({b.S for b in multi}) == ["AAPL", "MSFT"]
    daily = api.get_bars("AAPL", TimeFrame.Day, start="2024-02-26", end="2024-03-01")
    assert len(daily) == 5
    assert api.get_latest_trade("AAPL").p > 0 and api.get_latest_quote("AAPL").ap > 0


def _bracket_run(
    api: REST, server: SimServer, stream: StreamRunner, tp_off: float, sl_off: float, events: int
) -> list[Any]:
    stream.stream.subscribe_trade_updates(stream.on_update)
    stream.start()
    wait_for(lambda: any(c.listening for c in server.sockets.trading))
    server.clock.advance_to(dt.datetime(2024, 3, 4, 9, 45, tzinfo=NY))
    p = api.get_latest_trade("AAPL").p
    parent = api.submit_order(
        "AAPL",
        100,
        "buy",
        "market",
        "day",
        client_order_id="entry-1",
        order_class="bracket",
        take_profit={"limit_price": round(p + tp_off, 2)},
        stop_loss={"stop_price": round(p - sl_off, 2)},
    )
    assert [leg.status for leg in parent.legs] == ["held", "held"]
    for _ in range(390):
        server.clock.advance(60)
        if not api.list_orders(status="open"):
            break
    return stream.collect(events)


def test_bracket_take_profit_then_stop_canceled(api: REST, server: SimServer, stream: StreamRunner) -> None:
    ups = _bracket_run(api, server, stream, tp_off=0.05, sl_off=20.0, events=6)
    got = [(u.event, u.order["type"]) for u in ups]
    assert got == [
        ("pending_new", "market"),  # POST /v2/orders answered pending_new in the session
        ("new", "market"),
        ("fill", "market"),
        ("new", "limit"),  # the take-profit rests at the exchange; the stop-loss stays held
        ("fill", "limit"),
        ("canceled", "stop"),
    ]
    assert all(u.timestamp for u in ups)  # timestamp on every event (alpaca-py requires it)
    assert "execution_id" not in ups[0]._raw and all(u.execution_id for u in ups[1:])
    fill_ex = {u.execution_id for u in ups if u.event == "fill"}
    acts = api.get_activities("FILL")
    assert {a.id.split("::")[1] for a in acts} == fill_ex  # stream and REST dedupe on execution_id
    assert api.list_positions() == []
    assert api.get_order_by_client_order_id("entry-1").status == "filled"


def test_bracket_stop_fills_then_take_profit_canceled(
    api: REST, server: SimServer, stream: StreamRunner
) -> None:
    ups = _bracket_run(api, server, stream, tp_off=20.0, sl_off=0.05, events=7)
    assert [(u.event, u.order["type"]) for u in ups][-3:] == [
        ("new", "stop"),  # released from held when its price traded
        ("fill", "stop"),
        ("canceled", "limit"),
    ]
    assert ups[-2].position_qty == "0" and ups[-2].qty == "100"


def test_data_stream_pushes_closed_bars(api: REST, server: SimServer, stream: StreamRunner) -> None:
    stream.stream.subscribe_bars(stream.on_bar, "AAPL")
    stream.start()
    wait_for(lambda: any(c.subs["bars"] for c in server.sockets.data))
    server.clock.advance_to(dt.datetime(2024, 3, 4, 9, 33, 30, tzinfo=NY))
    got = stream.collect(3, stream.bars)
    rest = api.get_bars("AAPL", TimeFrame.Minute, feed="iex")[:3]  # the stream's feed
    assert [b.close for b in got] == [b.c for b in rest]
    assert [b.timestamp for b in got] == [int(b.t.value) for b in rest]  # ns since epoch (msgpack Timestamp)
    assert got[0].symbol == "AAPL"


def test_rejections_have_alpaca_shapes(api: REST, server: SimServer) -> None:
    with pytest.raises(APIError) as err:
        api.submit_order("AAPL", 1, "buy", "limit", "day", limit_price="41.085")
    assert (err.value.status_code, err.value.code) == (422, 42210000)
    assert (
        str(err.value)
        == "invalid limit_price 41.085. sub-penny increment does not fulfill minimum pricing criteria"
    )
    api.submit_order("AAPL", 1, "buy", "limit", "day", limit_price="1.00", client_order_id="dup")
    with pytest.raises(APIError) as err:
        api.submit_order("AAPL", 1, "buy", "limit", "day", limit_price="1.00", client_order_id="dup")
    assert (err.value.status_code, err.value.code, str(err.value)) == (
        422,
        40010001,
        "client_order_id must be unique",
    )
    with pytest.raises(APIError) as err:
        api.submit_order("NOSHORT", 1, "sell", "market", "day")
    assert err.value.status_code == 403
    with pytest.raises(APIError) as err:
        api.submit_order("AAPL", 10_000, "buy", "market", "day")
    assert (err.value.status_code, err.value.code) == (403, 40310000)


def test_401_on_bad_key(server: SimServer) -> None:
    bad = REST("wrong", "wrong", URL(server.base_url))
    with pytest.raises(APIError) as err:
        bad.get_account()
    # Alpaca's 401 has no code (the SDK then reports the status as the code)
    assert (err.value.status_code, err.value.code, str(err.value)) == (401, 401, "unauthorized.")


def test_429_after_200_requests_in_a_virtual_minute(api: REST, server: SimServer) -> None:
    for _ in range(200):
        api.get_clock()
    with pytest.raises(APIError) as err:
        api.get_clock()
    assert err.value.status_code == 429
    assert err.value.response.headers["X-Ratelimit-Remaining"] == "0"
    server.clock.advance(61)
    r = requests.get(
        server.base_url + "/v2/clock",
        headers={"APCA-API-KEY-ID": "simkey", "APCA-API-SECRET-KEY": "simsecret"},
        timeout=5,
    )
    assert r.status_code == 200 and r.headers["X-Ratelimit-Limit"] == "200"
    assert r.headers["X-Ratelimit-Remaining"] == "199"
    log = requests.get(server.base_url + "/sim/requests", timeout=5).json()
    ok = [x["ts"] for x in log if x["status"] != 429]
    assert all(sum(1 for t in ok if s - 60 < t <= s) <= 200 for s in ok)


def test_faults_over_http(api: REST, server: SimServer) -> None:
    sim = server.base_url + "/sim"
    requests.post(sim + "/faults", json={"http_status": 503, "count": 1, "paths": "/v2/account"}, timeout=5)
    with pytest.raises(APIError) as err:
        api.get_account()
    assert err.value.status_code == 503
    assert api.get_account().status == "ACTIVE"
    # A 504 that hides a successful submission: the order exists, find it by client_order_id.
    requests.post(sim + "/faults", json={"http_status": 504, "paths": "/v2/orders", "after": True}, timeout=5)
    with pytest.raises(APIError):
        api.submit_order("AAPL", 1, "buy", "limit", "day", limit_price="1.00", client_order_id="maybe")
    assert api.get_order_by_client_order_id("maybe").status == "accepted"  # before the open
    requests.post(sim + "/faults", json={"reject_next_orders": 1}, timeout=5)
    o = api.submit_order("AAPL", 1, "buy", "limit", "day", limit_price="1.00")
    assert api.get_order(o.id).status == "rejected"
    requests.post(sim + "/faults", json={"forbidden": True}, timeout=5)
    with pytest.raises(APIError) as err:
        api.get_account()
    assert err.value.status_code == 403
    requests.post(sim + "/faults", json={"clear": True}, timeout=5)
    state = requests.post(sim + "/clock", json={"advance_seconds": 3600}, timeout=5).json()
    assert state["now_new_york"].startswith("2024-03-04T10:25")
    assert requests.get(sim + "/fills", timeout=5).json() == []


def test_cancel_all_close_all_and_activity_paging(api: REST, server: SimServer) -> None:
    server.clock.advance(6 * 60)
    for i in range(3):
        api.submit_order("AAPL", 10, "buy", "market", "day", client_order_id=f"m{i}")
        server.clock.advance(60)
    api.submit_order("AAPL", 1, "buy", "limit", "day", limit_price="1.00")
    assert int(api.get_position("AAPL").qty) == 30
    resp = requests.delete(
        server.base_url + "/v2/orders",
        headers={"APCA-API-KEY-ID": "simkey", "APCA-API-SECRET-KEY": "simsecret"},
        timeout=5,
    )
    assert resp.status_code == 207 and len(resp.json()) == 1
    closed = api.close_all_positions()
    assert len(closed) == 1
    server.clock.advance(60)
    assert api.list_positions() == []
    page1 = api.get_activities("FILL", page_size=2)
    page2 = api.get_activities("FILL", page_size=2, page_token=page1[-1].id)
    assert len(page1) == 2 and len(page2) == 2 and page1[-1].id != page2[0].id
    assert [o.client_order_id for o in api.list_orders(status="closed", direction="asc")][:3] == [
        "m0",
        "m1",
        "m2",
    ]


def test_asyncio_not_leaking_loops() -> None:
    # The server runs its own loop on its own thread: the test thread has none running.
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
