"""The simulator's market-data rules over the wire (issue 15 §7-8): one data-stream connection per key
and feed (406), a feed the plan lacks (409 on the stream, 403 on REST), the auth timeout (404), updated
bars (`u`) on `updatedBars` only, and the IEX feed's missing minutes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websockets

from breakout_bot.core.model import NEW_YORK as NY
from breakout_bot.sim import SimConfig, SimServer
from breakout_bot.sim.feeds import is_revised

pytestmark = pytest.mark.integration
HEADERS = {"APCA-API-KEY-ID": "simkey", "APCA-API-SECRET-KEY": "simsecret"}


@pytest.fixture
def free(request: pytest.FixtureRequest) -> Iterator[SimServer]:
    cfg = SimConfig(
        symbols=("AAPL",), start=dt.date(2024, 3, 4), speed=0, free_plan=True, data_auth_timeout_s=0.5
    )
    srv = SimServer(cfg)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def ws_url(server: SimServer, feed: str) -> str:
    return server.base_url.replace("http", "ws") + f"/v2/{feed}"


async def recv(ws: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
    return list(json.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def auth(ws: Any) -> list[dict[str, Any]]:
    assert await recv(ws) == [{"T": "success", "msg": "connected"}]
    await ws.send(json.dumps({"action": "auth", "key": "simkey", "secret": "simsecret"}))
    return await recv(ws)


def test_a_second_connection_on_a_feed_gets_406_another_feed_is_fine(server: SimServer) -> None:
    async def go() -> tuple[Any, Any, Any, Any]:
        async with websockets.connect(ws_url(server, "iex")) as first:
            one = await auth(first)
            async with websockets.connect(ws_url(server, "iex")) as second:
                two = await auth(second)
            async with websockets.connect(ws_url(server, "sip")) as other:
                three = await auth(other)
        async with websockets.connect(ws_url(server, "iex")) as again:  # the slot is free once closed
            four = await auth(again)
        return one, two, three, four

    one, two, three, four = asyncio.run(go())
    assert one == [{"T": "success", "msg": "authenticated"}]
    assert two == [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]
    assert three == four == [{"T": "success", "msg": "authenticated"}]


def test_the_connection_limit_fault_holds_the_slot(server: SimServer) -> None:
    server.control.apply_faults({"data_connection_limit": True})

    async def go() -> Any:
        async with websockets.connect(ws_url(server, "iex")) as ws:
            return await auth(ws)

    assert asyncio.run(go())[0]["code"] == 406
    server.control.apply_faults({"clear": True})
    assert asyncio.run(go())[0]["msg"] == "authenticated"


def test_a_free_plan_gets_409_on_the_sip_stream_and_403_on_recent_sip_bars(free: SimServer) -> None:
    async def go(feed: str) -> Any:
        async with websockets.connect(ws_url(free, feed)) as ws:
            return await auth(ws)

    assert asyncio.run(go("sip")) == [{"T": "error", "code": 409, "msg": "insufficient subscription"}]
    assert asyncio.run(go("iex"))[0]["msg"] == "authenticated"
    free.clock.advance_to(dt.datetime(2024, 3, 4, 10, 30, tzinfo=NY))
    url = f"{free.base_url}/v2/stocks/AAPL/bars"
    recent = requests.get(url, params={"timeframe": "1Min", "feed": "sip"}, headers=HEADERS, timeout=5)
    assert recent.status_code == 403
    assert recent.json() == {"message": "subscription does not permit querying recent SIP data"}
    old_end = "2024-03-04T15:10:00Z"  # 10:10 New York: 20 minutes old
    old = requests.get(
        url, params={"timeframe": "1Min", "feed": "sip", "end": old_end}, headers=HEADERS, timeout=5
    )
    assert old.status_code == 200 and len(old.json()["bars"]) == 41  # 09:30-10:10, end inclusive
    latest = requests.get(f"{url}/latest", params={"feed": "sip"}, headers=HEADERS, timeout=5)
    assert latest.status_code == 403
    iex = requests.get(
        url, params={"timeframe": "1Min"}, headers=HEADERS, timeout=5
    )  # the plan's default: iex
    assert iex.status_code == 200 and 0 < len(iex.json()["bars"]) < 60


def test_a_client_that_does_not_authenticate_gets_404_auth_timeout(free: SimServer) -> None:
    async def go() -> Any:
        async with websockets.connect(ws_url(free, "iex")) as ws:
            assert await recv(ws) == [{"T": "success", "msg": "connected"}]
            return await recv(ws, timeout=5)

    assert asyncio.run(go()) == [{"T": "error", "code": 404, "msg": "auth timeout"}]


def test_updated_bars_come_as_u_on_updated_bars_only(server: SimServer) -> None:
    """A bar recomputed with late trades: its `b` lacks the late volume, the `u` 30 s later has it."""
    seed, pct = server.cfg.seed, server.cfg.updated_bar_pct
    day = server.source.day("AAPL", server.exchange.calendar.session_on_or_after(dt.date(2024, 3, 4)))
    revised = [t for t in day.t.tolist()[:45] if is_revised(seed, "AAPL", float(t), pct)]
    assert len(revised) >= 2, "seed 7 revises bars in the first 20 minutes and in the next 20"

    async def go(channels: dict[str, list[str]], until: dt.datetime) -> list[dict[str, Any]]:
        async with websockets.connect(ws_url(server, "sip")) as ws:
            await auth(ws)
            await ws.send(json.dumps({"action": "subscribe", **channels}))
            await recv(ws)
            await asyncio.to_thread(server.clock.advance_to, until)
            got: list[dict[str, Any]] = []
            try:
                while True:
                    got += await recv(ws, timeout=1.0)
            except asyncio.TimeoutError:
                return got

    bars_only = asyncio.run(go({"bars": ["AAPL"]}, dt.datetime(2024, 3, 4, 9, 52, tzinfo=NY)))
    assert {m["T"] for m in bars_only} == {"b"} and len(bars_only) == 22  # 09:30-09:51
    both = asyncio.run(
        go({"bars": ["AAPL"], "updatedBars": ["AAPL"]}, dt.datetime(2024, 3, 4, 10, 15, tzinfo=NY))
    )
    updates = [m for m in both if m["T"] == "u"]
    firsts = {m["t"]: m for m in both if m["T"] == "b"}
    assert updates and all(u["v"] > firsts[u["t"]]["v"] for u in updates)
    rest = requests.get(
        f"{server.base_url}/v2/stocks/AAPL/bars", params={"timeframe": "1Min"}, headers=HEADERS, timeout=5
    ).json()["bars"]
    by_t = {b["t"]: b for b in rest}
    assert all(by_t[u["t"]]["v"] == u["v"] for u in updates)  # REST has the recomputed bar
