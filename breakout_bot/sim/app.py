"""SimServer: the Alpaca-compatible HTTP + websocket server (aiohttp) on its own thread and loop.

REST trading v2 and market data v2 share one root (point APCA_API_BASE_URL and APCA_API_DATA_URL at
it); /stream is the trading websocket, /v2/iex and /v2/sip the data websocket; /sim/* is the control
and fault-injection API (not rate limited; no auth on loopback, the API key headers on any other
address). See docs/simulator.md.

The parts: the exchange (exchange.py: orders, matching, account, on models), the wire (wire.py: all
JSON), the trading and data routes (routes_trading.py, routes_data.py), the websockets
(websockets.py) and the control API (control.py). This module starts and stops them, runs the pump
that moves the tape even when no request comes in, and guards every REST request (`guard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import pathlib
import threading
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..core.model import NEW_YORK
from ..market.bars import FileSource
from ..market.calendar import MarketCalendar, xnys
from ..market.days import BarSource
from ..market.synthetic import SyntheticSource
from .clock import VirtualClock
from .config import SimConfig
from .control import Control
from .errors import ApiError, unauthorized
from .exchange import Exchange, RequestRecord
from .faults import FaultState
from .quota import RequestQuota
from .responses import error_response
from .routes_data import DataRoutes
from .routes_trading import TradingRoutes
from .websockets import WS_PATHS, Websockets

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def calendar_for(source: BarSource) -> MarketCalendar:
    """XNYS; for a bar file only its sessions, so the market opens on the next day with bars (a replay
    of 2013 and 2023 sessions goes from one to the next instead of trading ten years of empty days)."""
    dates = source.session_dates()
    return xnys() if dates is None else xnys().only(dates)


def resolve_start(cfg: SimConfig, source: BarSource, cal: MarketCalendar | None = None) -> dt.datetime:
    """Start instant (New York): cfg.start, else the first session in the data file, else the next
    XNYS session on or after today; at cfg.start_time."""
    cal = cal or xnys()
    day = cfg.start
    if day is None:
        day = source.first_session_date()
    if day is None:
        day = cal.session_on_or_after(dt.datetime.now(NEW_YORK).date()).date
    return dt.datetime.combine(day, cfg.start_time, NEW_YORK)


class SimServer:
    """The simulator. start() -> base URL; stop(). clock: VirtualClock; exchange: Exchange;
    control: the fault API in Python."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.source: BarSource = (
            FileSource(pathlib.Path(cfg.data), cfg.symbols) if cfg.data else SyntheticSource(cfg.seed)
        )
        self.calendar = calendar_for(self.source)
        start = resolve_start(cfg, self.source, self.calendar)
        self.clock = VirtualClock(start, cfg.speed)
        self.exchange = Exchange(cfg, self.source, self.calendar, start.timestamp())
        self.exchange.publishing = True
        self.faults = FaultState()
        self.faults.latency_ms = cfg.latency_ms
        self.quota = RequestQuota(cfg.rate_limit)
        self.sockets = Websockets(cfg, self.exchange, self._subscriptions_changed)
        self.control = Control(
            cfg, self.clock, self.exchange, self.calendar, self.faults, self.sockets, self._drop
        )
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._wake: asyncio.Event | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self.exchange.on_output = self._poke
        self.clock.add_listener(self._on_jump)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        """Start on a background thread; returns "http://HOST:PORT" once it accepts connections."""
        if self._thread is not None:
            return self.base_url
        self._thread = threading.Thread(target=self._run, name="breakout-sim", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._startup_error is not None:
            raise self._startup_error
        return self.base_url

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as e:  # reported to start()'s caller
            self._startup_error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._shutdown())
        loop.close()

    async def _startup(self) -> None:
        self._wake = asyncio.Event()
        app = web.Application(middlewares=[self.guard])
        self.sockets.register(app.router)
        TradingRoutes(self.exchange, self.calendar).register(app.router)
        DataRoutes(self.exchange).register(app.router)
        self.control.register(app.router)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{self.cfg.host}:{port}"
        self._pump_task = asyncio.get_running_loop().create_task(self._pump())

    async def _shutdown(self) -> None:
        if self._pump_task is not None:
            self._pump_task.cancel()
        for conn in self.sockets.connections("all"):
            conn.abort()
        if self._runner is not None:
            await self._runner.cleanup()
        # Every task still pending (the pump, a websocket's writer) ends here, awaited: a task left to
        # the loop's close prints "Task was destroyed but it is pending!" on Ctrl-C and SIGTERM.
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        """Stop the server and its thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
        self._thread = None

    # ------------------------------------------------------------------ the pump
    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def _on_jump(self, ts: float) -> None:
        self.exchange.sync(ts)  # settle fills now, so advance() returns with the exchange up to date
        self._poke()

    async def _pump(self) -> None:
        """Tape -> exchange -> websockets, even when no request comes in."""
        assert self._wake is not None
        while True:
            self._subscriptions_changed(self.sockets.subscribed())
            self.exchange.sync(self.clock.timestamp())
            await self.sockets.publish(self.exchange.drain())
            nxt = self.exchange.next_event_time()
            wall = self.clock.wall_seconds_until(nxt) if nxt is not None else None
            timeout = 0.5 if wall is None else min(max(wall, 0.001), 0.5)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()

    def _subscriptions_changed(self, subscribed: bool) -> None:
        self.exchange.publish_data = subscribed  # market data messages only while someone listens

    def _drop(self, which: str) -> int:
        conns = self.sockets.connections(which)
        loop = self._loop
        if loop is None:
            return 0
        for conn in conns:
            loop.call_soon_threadsafe(conn.abort)
        return len(conns)

    # ------------------------------------------------------------------ every REST request
    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Auth, the request quota, injected faults and latency, Alpaca's error bodies, the request log."""
        path = request.path
        if path in WS_PATHS:
            return await handler(request)  # the websockets authenticate in their own handshake
        if path.startswith("/sim"):
            if self.cfg.guards_control and not self._authorized(request):
                return error_response(ApiError(401, 40110000, "request is not authorized"))
            return await handler(request)
        now = self.clock.timestamp()
        arrived = time.time()
        status = 500
        try:
            resp = await self._guarded(request, handler, now)
            status = resp.status
            return resp
        finally:
            agent = request.headers.get("User-Agent", "")
            self.exchange.record_request(RequestRecord(now, request.method, path, status, agent, arrived))

    def _authorized(self, request: web.Request) -> bool:
        return (
            request.headers.get("APCA-API-KEY-ID") == self.cfg.key
            and request.headers.get("APCA-API-SECRET-KEY") == self.cfg.secret
        )

    async def _guarded(self, request: web.Request, handler: Handler, now: float) -> web.StreamResponse:
        key = request.headers.get("APCA-API-KEY-ID") or ""
        if not self._authorized(request):
            return error_response(unauthorized())
        if self.faults.forbidden:
            return error_response(ApiError(403, 40310000, "forbidden"))
        api = "data" if request.path.startswith("/v2/stocks") else "trading"
        verdict = self.quota.check(key, api, now)
        headers = verdict.headers()
        if not verdict.allowed:
            return error_response(ApiError(429, 42910000, "rate limit exceeded"), headers)
        fault = self.faults.take_http(request.path, request.method)
        if fault is not None and not fault.after:
            return error_response(fault.error(), headers)
        if self.faults.latency_ms > 0:
            await asyncio.sleep(self.faults.latency_ms / 1000.0)
        self.exchange.sync(self.clock.timestamp())
        try:
            resp = await handler(request)
        except ApiError as e:
            resp = error_response(e)
        except web.HTTPException as e:
            resp = error_response(ApiError(e.status, e.status * 100_000, e.reason.lower()))
        if fault is not None:
            return error_response(fault.error(), headers)
        resp.headers.update(headers)
        return resp
