"""The dashboard's web server: aiohttp on a thread and an event loop of its own, read-only (GET only).

The runner never waits on it: an observer hands each status over with `call_soon_threadsafe` (no lock,
no I/O on the runner's thread); everything else (the journal read, the page's JSON, the browsers'
sockets) happens here. Each browser has a bounded queue of updates: a slow or gone browser loses the
oldest update it has not read (each update is the whole page, so the newest is all it needs), and
never holds up another browser or the bot.

Routes: `/` the page, `/plotly.min.js` (the installed plotly package's own bundle: nothing is fetched
from the internet), `/events` (server-sent events: the page's JSON on every change; EventSource
reconnects by itself when the bot restarts), `/api/state` (the same JSON, once), `/api/days` and
`/api/day/YYYY-MM-DD` (past days from the journal).

A token (required off loopback) is accepted as `?token=` once, then kept in an HttpOnly cookie, or as
`Authorization: Bearer`; it is compared in constant time and never logged (aiohttp's access log is off:
it would print the query string).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ...errors import ConfigError
from .page import page_html

log = logging.getLogger(__name__)

CLIENT_QUEUE = 8  # updates a browser may lag behind before the oldest are dropped
KEEPALIVE = 15.0  # seconds between SSE comments, so proxies and browsers keep the stream open
RETRY_MS = 2000  # EventSource's reconnect delay after the stream ends (a restarted bot)
COOKIE = "breakout_dashboard"
LOOPBACK_NAMES = ("localhost",)

View = dict[str, Any]
DayReader = Callable[[str], Awaitable[View | None]]
DaysReader = Callable[[], Awaitable[list[str]]]


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """A Host header's name: "127.0.0.1:8050" → 127.0.0.1, "[::1]:8050" → ::1, "localhost" → localhost."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if ":" in host_header else host_header


def parse_address(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """`[HOST:]PORT` → (host, port); a bare port binds loopback. ConfigError (one line) when malformed."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host = default_host
    host = host.strip("[]") or default_host
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ConfigError(f"--dashboard {value}: expected [HOST:]PORT, e.g. 8050 or 127.0.0.1:8050")
    return host, port


def check_exposure(host: str, token: str | None) -> None:
    """Any interface but loopback needs a token: the page shows positions and P&L."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"--dashboard {host}: a dashboard on a non-loopback interface needs a token "
            "(--dashboard-token or BREAKOUT_DASHBOARD_TOKEN)"
        )


def plotly_bundle() -> Path:
    """plotly.min.js as the installed plotly package ships it."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


class Hub:
    """The browsers' update queues (used on the server's loop only)."""

    def __init__(self) -> None:
        self.clients: set[asyncio.Queue[str]] = set()
        self.latest: str | None = None
        self.dropped = 0  # updates a lagging browser never saw (a newer one replaced them)

    def publish(self, text: str) -> None:
        self.latest = text
        for queue in self.clients:
            if queue.full():
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait(text)

    def subscribe(self) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(CLIENT_QUEUE)
        if self.latest is not None:
            queue.put_nowait(self.latest)
        self.clients.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self.clients.discard(queue)


class _Token:
    """The dashboard's token. Its repr never shows it."""

    def __init__(self, value: str | None) -> None:
        self._value = value or None

    def __bool__(self) -> bool:
        return self._value is not None

    def __repr__(self) -> str:
        return "Token(***)" if self._value else "Token(None)"

    def matches(self, given: str | None) -> bool:
        return self._value is not None and given is not None and hmac.compare_digest(given, self._value)

    @property
    def value(self) -> str:
        assert self._value is not None
        return self._value


def build_app(
    hub: Hub,
    *,
    mode: str,
    token: str | None = None,
    loopback_only: bool = True,
    days: DaysReader | None = None,
    day: DayReader | None = None,
    title: str = "breakout-bot",
) -> web.Application:
    """The read-only application (`mode`: "run", a live bot, or "journal", past days)."""
    secret = _Token(token)

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # A page on loopback without a token answers loopback Host names only (a DNS-rebinding page in
        # the user's browser would otherwise read it).
        if loopback_only and not secret and not is_loopback(host_name(request.host or "")):
            raise web.HTTPForbidden(text="this dashboard answers on loopback names only\n")
        cookie_ok = False
        if secret:
            bearer = request.headers.get("Authorization", "")
            given = bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else None
            from_query = request.query.get("token")
            cookie_ok = secret.matches(request.cookies.get(COOKIE))
            if not (cookie_ok or secret.matches(given) or secret.matches(from_query)):
                raise web.HTTPUnauthorized(
                    text="this dashboard needs its token: open it as /?token=…\n",
                    headers={"WWW-Authenticate": 'Bearer realm="breakout-bot"'},
                )
        response = await handler(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # a ?token= never leaves in a Referer
        response.headers.setdefault("Cache-Control", "no-store")
        if secret and not cookie_ok and isinstance(response, web.Response):
            response.set_cookie(COOKIE, secret.value, httponly=True, samesite="Strict")
        return response

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=page_html(mode, title), content_type="text/html")

    async def plotly_js(request: web.Request) -> web.FileResponse:
        return web.FileResponse(
            plotly_bundle(),
            headers={"Content-Type": "application/javascript", "Cache-Control": "private, max-age=86400"},
        )

    async def state(request: web.Request) -> web.Response:
        return web.Response(text=hub.latest or "null", content_type="application/json")

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        queue = hub.subscribe()
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            while True:
                try:
                    text = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except asyncio.TimeoutError:
                    await response.write(b": keepalive\n\n")
                    continue
                await response.write(f"event: state\ndata: {text}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            hub.unsubscribe(queue)
        return response

    async def list_days(request: web.Request) -> web.Response:
        found = await days() if days is not None else []
        return web.json_response(found)

    async def one_day(request: web.Request) -> web.Response:
        if day is None:
            raise web.HTTPNotFound()
        view = await day(request.match_info["day"])
        if view is None:
            raise web.HTTPNotFound(text="no such day in the journal\n")
        return web.json_response(view)

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", index)
    app.router.add_get("/plotly.min.js", plotly_js)
    app.router.add_get("/api/state", state)
    app.router.add_get("/events", events)
    app.router.add_get("/api/days", list_days)
    app.router.add_get(r"/api/day/{day:\d{4}-\d{2}-\d{2}}", one_day)
    return app


class DashboardServer:
    """`build_app` served on its own thread and loop. `start` returns once the socket is bound (a port
    in use is a one-line ConfigError); `call` runs a function on the server's loop (thread-safe, never
    waits); `close` stops it."""

    def __init__(self, host: str, port: int, make_app: Callable[[Hub], web.Application]) -> None:
        self.host = host
        self.port = port
        self.hub = Hub()
        self._make_app = make_app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stop: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"DashboardServer({self.host}:{self.port})"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "start the server first"
        return self._loop

    def start(self) -> DashboardServer:
        self._thread = threading.Thread(target=self._run, name="dashboard", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._failure is not None:
            failure = self._failure
            raise ConfigError(
                f"--dashboard {self.host}:{self.port}: cannot serve there: {getattr(failure, 'strerror', None) or failure}"
            ) from None
        return self

    def call(self, fn: Callable[..., object], *args: object) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            # RuntimeError: the loop closed meanwhile; the dashboard is gone, the bot goes on.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn, *args)

    def close(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._stop is not None:
            self.call(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            if not self._ready.is_set():
                self._failure = exc
            else:
                log.warning("the dashboard stopped: %s", exc)
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(
            self._make_app(self.hub), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            if runner.addresses:  # port 0: the one the system chose
                self.port = int(runner.addresses[0][1])
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:  # a feed's pending update: the page is going away
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)


def dumps(view: View) -> str:
    """One line of JSON (an SSE `data:` line must not hold a newline)."""
    return json.dumps(view, separators=(",", ":"), allow_nan=False)
