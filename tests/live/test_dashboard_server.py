"""The dashboard's server (live/dashboard/server.py, feed.py): its own thread, server-sent events fed by
the runner observer, the token, GET only, a browser that lags never holding up the bot."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from waiting import wait_for

from breakout_bot.config.settings import load_settings
from breakout_bot.core.model import NEW_YORK, Bar, Session
from breakout_bot.core.state import ACTIVE_TRADE, SEARCHING, evolve, initial_state
from breakout_bot.errors import ConfigError
from breakout_bot.journal import FillRecord, Journal
from breakout_bot.live.dashboard.feed import JournalDays, RunFeed
from breakout_bot.live.dashboard.server import (
    CLIENT_QUEUE,
    DashboardServer,
    Hub,
    build_app,
    check_exposure,
    host_name,
    parse_address,
)
from breakout_bot.live.runner import RunnerStatus

T = datetime(2024, 3, 4, 10, 0, tzinfo=NEW_YORK)
SESSION = Session(T.date(), T.replace(hour=9, minute=30), T.replace(hour=16))
TOKEN = "s3cret-dashboard-token-1234"


def serve(token: str | None = None, journal: JournalDays | None = None, mode: str = "run") -> DashboardServer:
    def make_app(hub: Hub) -> aiohttp.web.Application:
        return build_app(
            hub,
            mode=mode,
            token=token,
            days=journal.days if journal else None,
            day=journal.day if journal else None,
        )

    return DashboardServer("127.0.0.1", 0, make_app).start()


@pytest.fixture
def server() -> Iterator[DashboardServer]:
    s = serve()
    yield s
    s.close()


def get(url: str, **kwargs: Any) -> tuple[int, str, dict[str, str]]:
    async def go() -> tuple[int, str, dict[str, str]]:
        async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as r:
            return r.status, await r.text(), dict(r.headers)

    return asyncio.run(go())


def status(now: datetime, *states: Any) -> RunnerStatus:
    return RunnerStatus(now, True, tuple(states), Decimal("100000"))


def test_the_sse_stream_delivers_an_update_when_the_observer_sees_a_step(
    server: DashboardServer, tmp_path: Path
) -> None:
    feed = RunFeed(server, tmp_path / "past_trades.json", simulated=True)
    searching = evolve(initial_state("AAPL"), phase=SEARCHING, session=SESSION)
    feed(status(T, searching))
    wait_for(lambda: server.hub.latest is not None)

    async def read_two_updates() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as session, session.get(server.url + "events") as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                    if len(seen) == 1:  # the page as it is, then the bot steps
                        bars = (Bar(T, 185.0, 185.5, 184.9, 185.4),)
                        in_trade = evolve(searching, phase=ACTIVE_TRADE, position_qty=Decimal(100), bars=bars)
                        await asyncio.get_running_loop().run_in_executor(
                            None, feed, status(T + timedelta(minutes=1), in_trade)
                        )
                    else:
                        return seen
        return seen

    first, second = asyncio.run(asyncio.wait_for(read_two_updates(), 10))
    assert first["symbols"][0]["phase_words"] == "building the box (0/10 bars)"
    assert second["symbols"][0]["phase_words"] == "in trade"
    assert second["symbols"][0]["bars"][0]["close"] == 185.4
    assert second["now"] == "2024-03-04T10:01:00"


def test_the_observer_never_waits_on_a_stalled_server(server: DashboardServer, tmp_path: Path) -> None:
    feed = RunFeed(server, tmp_path / "past_trades.json", simulated=True)
    state = evolve(initial_state("AAPL"), phase=SEARCHING, session=SESSION)
    server.call(time.sleep, 1.0)  # the server's loop is busy for a second
    started = time.monotonic()
    for i in range(200):
        feed(status(T + timedelta(seconds=i), state))
    assert time.monotonic() - started < 0.5
    wait_for(lambda: server.hub.latest is not None and '"now":"2024-03-04T10:03:19"' in server.hub.latest)


def test_a_lagging_browser_keeps_only_the_newest_updates() -> None:
    async def go() -> None:
        hub = Hub()
        queue = hub.subscribe()
        for i in range(100):
            hub.publish(str(i))
        assert queue.qsize() == CLIENT_QUEUE
        assert [queue.get_nowait() for _ in range(CLIENT_QUEUE)] == [str(i) for i in range(92, 100)]
        assert hub.dropped == 100 - CLIENT_QUEUE

    asyncio.run(go())


def test_the_page_and_plotly_come_from_our_server(server: DashboardServer) -> None:
    code, page, _ = get(server.url)
    assert code == 200 and 'src="plotly.min.js"' in page and "EventSource" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere
    code, js, headers = get(server.url + "plotly.min.js")
    assert (
        code == 200 and headers["Content-Type"].startswith("application/javascript") and "plotly" in js[:2000]
    )


def test_read_only_no_route_takes_anything_but_get(server: DashboardServer) -> None:
    app = build_app(Hub(), mode="run")
    methods = {route.method for route in app.router.routes()}
    assert methods == {"GET", "HEAD"}

    async def go() -> dict[tuple[str, str], int]:
        out = {}
        async with aiohttp.ClientSession() as session:
            for path in ("", "events", "api/state", "api/days", "plotly.min.js"):
                for method in ("POST", "PUT", "DELETE", "PATCH"):
                    async with session.request(method, server.url + path) as r:
                        out[(method, path)] = r.status
        return out

    assert set(asyncio.run(go()).values()) == {405}


def test_a_token_is_needed_once_then_kept_in_a_cookie() -> None:
    s = serve(TOKEN)
    try:
        assert get(s.url)[0] == 401
        assert get(s.url + "events?token=wrong")[0] == 401
        assert get(s.url + "api/state", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200

        async def with_cookie() -> tuple[int, int]:
            # unsafe: keep cookies from an IP address, as browsers do
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                async with session.get(s.url + f"?token={TOKEN}") as r:
                    first = r.status
                    assert "httponly" in r.headers["Set-Cookie"].lower()
                async with session.get(s.url + "api/state") as r:  # no token: the cookie carries it
                    return first, r.status

        assert asyncio.run(with_cookie()) == (200, 200)
        assert TOKEN not in repr(s)
    finally:
        s.close()


def test_off_loopback_a_token_is_required() -> None:
    with pytest.raises(ConfigError, match="non-loopback interface needs a token"):
        check_exposure("0.0.0.0", None)
    with pytest.raises(ConfigError, match="BREAKOUT_DASHBOARD_TOKEN"):
        check_exposure("192.168.1.5", "")
    check_exposure("0.0.0.0", TOKEN)
    for host in ("127.0.0.1", "127.1.2.3", "::1", "localhost"):
        check_exposure(host, None)


def test_addresses() -> None:
    assert parse_address("8050") == ("127.0.0.1", 8050)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    for bad in ("x", "127.0.0.1:", "70000", "host:-1"):
        with pytest.raises(ConfigError, match=r"expected \[HOST:\]PORT"):
            parse_address(bad)
    assert host_name("127.0.0.1:8050") == "127.0.0.1"
    assert host_name("[::1]:8050") == "::1"
    assert host_name("localhost") == "localhost"


def test_on_loopback_other_host_names_are_refused(server: DashboardServer) -> None:
    assert get(server.url, headers={"Host": "attacker.example:8050"})[0] == 403
    assert get(server.url, headers={"Host": f"localhost:{server.port}"})[0] == 200


def test_the_token_is_a_secret_in_settings_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(env={"BREAKOUT_DASHBOARD_TOKEN": TOKEN}, dotenv_path=None, trading=False)
    assert settings.dashboard_token == TOKEN
    assert TOKEN in settings.secrets  # the log filter redacts it
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.redacted())
    caplog.set_level(logging.DEBUG)
    s = serve(TOKEN)
    try:
        get(s.url + f"?token={TOKEN}")
        get(s.url + "?token=wrong")
    finally:
        s.close()
    assert TOKEN not in caplog.text  # no access log line with the query string


def test_a_port_in_use_is_one_line(server: DashboardServer) -> None:
    with pytest.raises(ConfigError, match=rf"--dashboard 127.0.0.1:{server.port}: cannot serve there"):
        DashboardServer("127.0.0.1", server.port, lambda hub: build_app(hub, mode="run")).start()


def test_past_days_from_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "past_trades.json"
    journal = Journal(path)
    journal.load()
    for fid, side, when, leg in (
        ("1", "buy", T, "entry"),
        ("2", "sell", T + timedelta(minutes=9), "stop_loss"),
    ):
        journal.append(
            FillRecord(
                fid,
                "o" + fid,
                "c" + fid,
                "MSFT",
                side,
                "10",
                "400" if side == "buy" else "399",
                when.isoformat(),
                leg=leg,
            )
        )
    journal.flush()
    journal.close()
    asked: list[tuple[str, object]] = []

    def bars_for(symbol: str, day: object) -> None:
        asked.append((symbol, day))
        return None

    s = serve(journal=JournalDays(path, bars_for), mode="journal")
    try:
        code, body, _ = get(s.url + "api/days")
        assert code == 200 and json.loads(body) == ["2024-03-04"]
        code, body, _ = get(s.url + "api/day/2024-03-04")
        day = json.loads(body)
        assert day["realized"] == -10.0 and day["symbols"][0]["bars_cached"] is False
        assert asked == [("MSFT", T.date())]
        assert get(s.url + "api/day/2024-03-05")[0] == 404
        assert '"journal"' in get(s.url)[1]  # the page in its journal mode: a day picker
    finally:
        s.close()


def test_a_run_shows_its_own_accounts_fills_only(server: DashboardServer, tmp_path: Path) -> None:
    path = tmp_path / "past_trades.json"
    journal = Journal(path)
    journal.load()
    for fid, account in (("1", "SIM-A"), ("2", "SIM-B")):
        journal.append(
            FillRecord(
                fid,
                "o" + fid,
                "c" + fid,
                "AAPL",
                "buy",
                "100",
                "185",
                T.isoformat(),
                mode="simulator",
                account=account,
            )
        )
    journal.flush()
    journal.close()
    feed = RunFeed(server, path, simulated=True, account=("simulator", "SIM-B"))
    feed(
        status(
            T, evolve(initial_state("AAPL"), phase=ACTIVE_TRADE, session=SESSION, position_qty=Decimal(100))
        )
    )
    wait_for(lambda: server.hub.latest is not None)
    page = json.loads(server.hub.latest or "null")
    assert [f["price"] for f in page["symbols"][0]["fills"]] == [185.0]
    assert len(page["symbols"][0]["fills"]) == 1
