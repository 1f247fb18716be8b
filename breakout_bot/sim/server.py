"""SimServer: the Alpaca-compatible HTTP + websocket server (aiohttp) on its own thread and loop.

REST trading v2 and market data v2 share one root (point APCA_API_BASE_URL and APCA_API_DATA_URL at
it); /stream is the trading websocket, /v2/iex and /v2/sip the data websocket; /sim/* is the control
and fault-injection API (no auth, not rate limited). See docs/simulator.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import pathlib
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..core.model import NEW_YORK
from ..market.bars import FileSource
from ..market.calendar import xnys
from ..market.days import BarSource
from ..market.synthetic import SyntheticSource
from . import marketdata, wire
from .assets import asset_json
from .clock import VirtualClock
from .config import SimConfig
from .engine import Engine, RequestRecord
from .errors import ApiError, invalid
from .faults import FaultState, HttpFault
from .quota import RequestQuota
from .streams import Conn, apply_subscription, decode, is_text_or_binary, subscription_message, wants_msgpack

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WS_PATHS = frozenset({"/stream", "/stream/", "/v2/iex", "/v2/sip", "/v2/test"})


def _json(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(obj), status=status, content_type="application/json", headers=headers)


def _raw(body: str) -> web.Response:
    return web.Response(text=body, content_type="application/json")


def _error(e: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    return _json(e.body(), status=e.status, headers=headers)


def _parse_ts(text: str | None) -> float | None:
    if not text:
        return None
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(0, 0), NEW_YORK).timestamp()
        d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"invalid timestamp {text}") from None
    return (d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)).timestamp()


def _int(text: str | None, default: int, name: str, lo: int, hi: int) -> int:
    if text in (None, ""):
        return default
    try:
        v = int(str(text))
    except ValueError:
        raise invalid(f"invalid {name}") from None
    return max(lo, min(hi, v))


def _bool(text: str | None) -> bool:
    return str(text).lower() in ("1", "true", "yes")


def resolve_start(cfg: SimConfig, source: BarSource) -> dt.datetime:
    """Start instant (New York): cfg.start, else the first session in the data file, else the next
    XNYS session on or after today; at cfg.start_time."""
    cal = xnys()
    day = cfg.start
    if day is None:
        day = source.first_session_date()
    if day is None:
        day = cal.session_on_or_after(dt.datetime.now(NEW_YORK).date()).date
    return dt.datetime.combine(day, cfg.start_time, NEW_YORK)


class SimServer:
    """The simulator. start() -> base URL; stop(). clock: VirtualClock; engine: Engine."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.source: BarSource = (
            FileSource(pathlib.Path(cfg.data), cfg.symbols) if cfg.data else SyntheticSource(cfg.seed)
        )
        start = resolve_start(cfg, self.source)
        self.clock = VirtualClock(start, cfg.speed)
        self.engine = Engine(cfg, self.source, xnys(), start.timestamp())
        self.engine.publishing = True
        self.faults = FaultState()
        self.faults.latency_ms = cfg.latency_ms
        self.limiter = RequestQuota(cfg.rate_limit)
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._wake: asyncio.Event | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._trading: set[Conn] = set()
        self._data: set[Conn] = set()
        self._stopping = False
        self.engine.on_output = self._poke
        self.clock.add_listener(self._on_jump)

    # ------------------------------------------------------------------------------------------------
    # lifecycle
    # ------------------------------------------------------------------------------------------------
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
        app = web.Application(middlewares=[self._middleware])
        self._routes(app)
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
        for conn in list(self._trading | self._data):
            conn.abort()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        """Stop the server and its thread (idempotent)."""
        self._stopping = True
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
        self._thread = None

    # ------------------------------------------------------------------------------------------------
    # the pump: tape -> engine -> websockets, even when no request comes in
    # ------------------------------------------------------------------------------------------------
    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def _on_jump(self, ts: float) -> None:
        self.engine.sync(ts)  # settle fills now, so advance() returns with the engine up to date
        self._poke()

    async def _pump(self) -> None:
        assert self._wake is not None
        while True:
            self._update_publish_flag()
            self.engine.sync(self.clock.timestamp())
            await self._flush()
            nxt = self.engine.next_event_time()
            wall = self.clock.wall_seconds_until(nxt) if nxt is not None else None
            timeout = 0.5 if wall is None else min(max(wall, 0.001), 0.5)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()

    async def _flush(self) -> None:
        batch = self.engine.drain()
        if not batch:
            return
        data_msgs = [m for kind, m in batch if kind == "data"]
        for kind, msg in batch:
            if kind != "trading":
                continue
            for conn in list(self._trading):
                if conn.listening:
                    try:
                        await conn.send_trading({"stream": "trade_updates", "data": msg})
                    except Exception:  # a dead socket: the client will reconnect
                        self._trading.discard(conn)
        if data_msgs:
            for conn in list(self._data):
                mine = [m for m in data_msgs if conn.wants(m)]
                if mine:
                    try:
                        await conn.send_data(mine)
                    except Exception:
                        self._data.discard(conn)

    # ------------------------------------------------------------------------------------------------
    # HTTP plumbing: auth, rate limit, faults, request log
    # ------------------------------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/sim") or path in WS_PATHS:
            return await handler(request)
        now = self.clock.timestamp()
        status = 500
        try:
            resp = await self._guarded(request, handler, now)
            status = resp.status
            return resp
        finally:
            self.engine.record_request(RequestRecord(now, request.method, path, status))

    async def _guarded(self, request: web.Request, handler: Handler, now: float) -> web.StreamResponse:
        key = request.headers.get("APCA-API-KEY-ID")
        if key != self.cfg.key or request.headers.get("APCA-API-SECRET-KEY") != self.cfg.secret:
            return _json({"code": 40110000, "message": "request is not authorized"}, status=401)
        if self.faults.forbidden:
            return _json({"code": 40310000, "message": "forbidden"}, status=403)
        api = "data" if request.path.startswith("/v2/stocks") else "trading"
        verdict = self.limiter.check(key, api, now)
        headers = verdict.headers()
        if not verdict.allowed:
            return _json({"code": 42910000, "message": "rate limit exceeded"}, status=429, headers=headers)
        fault = self.faults.take_http(request.path)
        if fault is not None and not fault.after:
            return _error(fault.error(), headers)
        if self.faults.latency_ms > 0:
            await asyncio.sleep(self.faults.latency_ms / 1000.0)
        self.engine.sync(self.clock.timestamp())
        try:
            resp = await handler(request)
        except ApiError as e:
            resp = _error(e)
        except web.HTTPException as e:
            resp = _json({"code": e.status * 100_000, "message": e.reason.lower()}, status=e.status)
        if fault is not None:
            return _error(fault.error(), headers)
        resp.headers.update(headers)
        return resp

    # ------------------------------------------------------------------------------------------------
    # routes
    # ------------------------------------------------------------------------------------------------
    def _routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/stream", self._ws_trading)
        r.add_get("/stream/", self._ws_trading)
        for feed in ("iex", "sip", "test"):
            r.add_get(f"/v2/{feed}", self._ws_data)
        r.add_get("/v2/account", self._account)
        r.add_get("/v2/account/configurations", self._account_config)
        r.add_get("/v2/account/activities", self._activities)
        r.add_get("/v2/account/activities/{activity_type}", self._activities)
        r.add_get("/v2/clock", self._clock)
        r.add_get("/v2/calendar", self._calendar)
        r.add_get("/v2/assets", self._assets)
        r.add_get("/v2/assets/{symbol}", self._asset)
        r.add_post("/v2/orders", self._submit)
        r.add_get("/v2/orders", self._list_orders)
        r.add_delete("/v2/orders", self._cancel_all)
        r.add_get("/v2/orders:by_client_order_id", self._by_client_id)
        r.add_get("/v2/orders/{order_id}", self._get_order)
        r.add_patch("/v2/orders/{order_id}", self._replace)
        r.add_delete("/v2/orders/{order_id}", self._cancel)
        r.add_get("/v2/positions", self._positions)
        r.add_delete("/v2/positions", self._close_all)
        r.add_get("/v2/positions/{symbol}", self._position)
        r.add_delete("/v2/positions/{symbol}", self._close_position)
        r.add_get("/v2/stocks/bars", self._bars_multi)
        r.add_get("/v2/stocks/bars/latest", self._latest_multi("bars"))
        r.add_get("/v2/stocks/trades/latest", self._latest_multi("trades"))
        r.add_get("/v2/stocks/quotes/latest", self._latest_multi("quotes"))
        r.add_get("/v2/stocks/{symbol}/bars", self._bars_single)
        r.add_get("/v2/stocks/{symbol}/bars/latest", self._latest_single("bar"))
        r.add_get("/v2/stocks/{symbol}/trades/latest", self._latest_single("trade"))
        r.add_get("/v2/stocks/{symbol}/quotes/latest", self._latest_single("quote"))
        r.add_get("/sim/state", self._sim_state)
        r.add_post("/sim/clock", self._sim_clock)
        r.add_post("/sim/faults", self._sim_faults)
        r.add_get("/sim/requests", self._sim_requests)
        r.add_get("/sim/fills", self._sim_fills)

    # -- trading REST ---------------------------------------------------------------------------------
    async def _account(self, request: web.Request) -> web.Response:
        return _json(self.engine.account_json())

    async def _account_config(self, request: web.Request) -> web.Response:
        # trading-api.json components.schemas.AccountConfigurations (read-only here).
        return _json(
            {
                "dtbp_check": "entry",
                "trade_confirm_email": "none",
                "suspend_trade": False,
                "no_shorting": False,
                "fractional_trading": False,
                "max_margin_multiplier": "4",
                "pdt_check": "entry",
            }
        )

    async def _clock(self, request: web.Request) -> web.Response:
        now = self.engine.now
        cal = xnys()
        return _json(wire.clock_json(now, cal.is_open(now), cal.next_open(now), cal.next_close(now)))

    async def _calendar(self, request: web.Request) -> web.Response:
        q = request.query
        cal = xnys()
        try:
            start = dt.date.fromisoformat(q["start"][:10]) if q.get("start") else cal.first_date
            end = dt.date.fromisoformat(q["end"][:10]) if q.get("end") else cal.last_date
        except ValueError:
            raise invalid("invalid date") from None
        return _json(
            [wire.calendar_json(s, cal.settlement_date(s.date)) for s in cal.sessions_between(start, end)]
        )

    async def _assets(self, request: web.Request) -> web.Response:
        status = request.query.get("status")
        rows = [asset_json(a) for _, a in sorted(self.engine.assets.items())]
        if status and status != "active":
            rows = []
        return _json(rows)

    async def _asset(self, request: web.Request) -> web.Response:
        sym = request.match_info["symbol"].upper()
        a = self.engine.assets.get(sym) or next(
            (x for x in self.engine.assets.values() if x.id == sym.lower()), None
        )
        if a is None:
            return _json({"code": 40410000, "message": "asset not found"}, status=404)
        return _json(asset_json(a))

    async def _body(self, request: web.Request) -> object:
        try:
            return await request.json()
        except ValueError:
            raise ApiError(400, 40010000, "request body format is invalid") from None

    async def _submit(self, request: web.Request) -> web.Response:
        return _json(self.engine.submit_order(await self._body(request)))

    async def _list_orders(self, request: web.Request) -> web.Response:
        q = request.query
        status = q.get("status", "open")
        if status not in ("open", "closed", "all"):
            raise invalid("invalid status")
        symbols = (
            {s.strip().upper() for s in q["symbols"].split(",") if s.strip()} if q.get("symbols") else None
        )
        direction = q.get("direction", "desc")
        rows = self.engine.list_orders(
            status=status,
            limit=_int(q.get("limit"), 50, "limit", 1, 500),
            after=_parse_ts(q.get("after")),
            until=_parse_ts(q.get("until")),
            direction="asc" if direction == "asc" else "desc",
            nested=_bool(q.get("nested")),
            symbols=symbols,
            side=q.get("side"),
        )
        return _json(rows)

    async def _by_client_id(self, request: web.Request) -> web.Response:
        coid = request.query.get("client_order_id", "")
        return _json(self.engine.order_json(self.engine.get_by_client_order_id(coid)))

    async def _get_order(self, request: web.Request) -> web.Response:
        return _json(self.engine.order_json(self.engine.get_order(request.match_info["order_id"])))

    async def _replace(self, request: web.Request) -> web.Response:
        return _json(self.engine.replace_order(request.match_info["order_id"], await self._body(request)))

    async def _cancel(self, request: web.Request) -> web.Response:
        self.engine.cancel_order(request.match_info["order_id"])
        return web.Response(status=204)

    async def _cancel_all(self, request: web.Request) -> web.Response:
        return _json(self.engine.cancel_all(), status=207)

    async def _positions(self, request: web.Request) -> web.Response:
        return _json(self.engine.positions_json())

    async def _position(self, request: web.Request) -> web.Response:
        return _json(self.engine.position_json(request.match_info["symbol"]))

    async def _close_position(self, request: web.Request) -> web.Response:
        q = request.query
        qty = int(float(q["qty"])) if q.get("qty") else None
        pct = float(q["percentage"]) if q.get("percentage") else None
        return _json(self.engine.close_position(request.match_info["symbol"], qty=qty, percentage=pct))

    async def _close_all(self, request: web.Request) -> web.Response:
        cancel = request.query.get("cancel_orders")
        return _json(self.engine.close_all(cancel_orders=cancel is None or _bool(cancel)), status=207)

    async def _activities(self, request: web.Request) -> web.Response:
        q = request.query
        kind = request.match_info.get("activity_type") or q.get("activity_types") or "FILL"
        if "FILL" not in kind.upper().split(","):
            return _json([])
        date = None
        if q.get("date"):
            try:
                date = dt.date.fromisoformat(q["date"][:10])
            except ValueError:
                raise invalid("invalid date") from None
        rows = self.engine.activities(
            date=date,
            after=_parse_ts(q.get("after")),
            until=_parse_ts(q.get("until")),
            direction="asc" if q.get("direction") == "asc" else "desc",
            page_size=_int(q.get("page_size"), 100, "page_size", 1, 100)
            if q.get("page_size") or not date
            else None,
            page_token=q.get("page_token"),
        )
        return _json(rows)

    # -- market data REST -----------------------------------------------------------------------------
    async def _bars_single(self, request: web.Request) -> web.Response:
        sym = request.match_info["symbol"].upper()
        return _raw(marketdata.bars(self.engine, [sym], dict(request.query), multi=False))

    async def _bars_multi(self, request: web.Request) -> web.Response:
        syms = [s.strip().upper() for s in request.query.get("symbols", "").split(",") if s.strip()]
        if not syms:
            raise marketdata.bad_request("symbols is required")
        return _raw(marketdata.bars(self.engine, syms, dict(request.query), multi=True))

    def _latest_single(self, what: str) -> Handler:
        fn = {
            "bar": marketdata.latest_bar,
            "trade": marketdata.latest_trade,
            "quote": marketdata.latest_quote,
        }[what]

        async def handler(request: web.Request) -> web.Response:
            sym = request.match_info["symbol"].upper()
            return _json({"symbol": sym, what: fn(self.engine, sym)})

        return handler

    def _latest_multi(self, what: str) -> Handler:
        fn = {
            "bars": marketdata.latest_bar,
            "trades": marketdata.latest_trade,
            "quotes": marketdata.latest_quote,
        }[what]

        async def handler(request: web.Request) -> web.Response:
            syms = [s.strip().upper() for s in request.query.get("symbols", "").split(",") if s.strip()]
            out = {s: v for s in syms if (v := fn(self.engine, s)) is not None}
            return _json({what: out})

        return handler

    # -- websockets -----------------------------------------------------------------------------------
    async def _ws_trading(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Conn(ws, request, wants_msgpack(request))
        self._trading.add(conn)
        try:
            async for msg in ws:
                if not is_text_or_binary(msg.type):
                    continue
                try:
                    req = decode(msg.data, conn.use_msgpack)
                except ValueError:
                    continue
                if not isinstance(req, dict):
                    continue
                data = req.get("data") if isinstance(req.get("data"), dict) else {}
                assert isinstance(data, dict)
                action = req.get("action")
                if action in ("authenticate", "auth"):
                    conn.authed = (
                        data.get("key_id") == self.cfg.key and data.get("secret_key") == self.cfg.secret
                    )
                    status = "authorized" if conn.authed else "unauthorized"
                    await conn.send_trading(
                        {"stream": "authorization", "data": {"status": status, "action": "authenticate"}}
                    )
                elif action == "listen":
                    if not conn.authed:
                        await conn.send_trading(
                            {
                                "stream": "authorization",
                                "data": {"status": "unauthorized", "action": "listen"},
                            }
                        )
                        continue
                    streams = data.get("streams") or []
                    conn.listening = isinstance(streams, list) and "trade_updates" in streams
                    await conn.send_trading(
                        {
                            "stream": "listening",
                            "data": {"streams": ["trade_updates"] if conn.listening else []},
                        }
                    )
        finally:
            self._trading.discard(conn)
        return ws

    async def _ws_data(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Conn(ws, request, wants_msgpack(request))
        self._data.add(conn)
        try:
            await conn.send_data([{"T": "success", "msg": "connected"}])
            async for msg in ws:
                if not is_text_or_binary(msg.type):
                    continue
                try:
                    req = decode(msg.data, conn.use_msgpack)
                except ValueError:
                    await conn.send_data([{"T": "error", "code": 400, "msg": "invalid syntax"}])
                    continue
                if not isinstance(req, dict):
                    await conn.send_data([{"T": "error", "code": 400, "msg": "invalid syntax"}])
                    continue
                action = req.get("action")
                if action == "auth":
                    if conn.authed:
                        await conn.send_data([{"T": "error", "code": 403, "msg": "already authenticated"}])
                    elif req.get("key") == self.cfg.key and req.get("secret") == self.cfg.secret:
                        conn.authed = True
                        await conn.send_data([{"T": "success", "msg": "authenticated"}])
                    else:
                        await conn.send_data([{"T": "error", "code": 402, "msg": "auth failed"}])
                elif action in ("subscribe", "unsubscribe"):
                    if not conn.authed:
                        await conn.send_data([{"T": "error", "code": 401, "msg": "not authenticated"}])
                        continue
                    apply_subscription(conn, req, add=action == "subscribe")
                    self._update_publish_flag()
                    await conn.send_data(subscription_message(conn))
                else:
                    await conn.send_data([{"T": "error", "code": 400, "msg": "invalid syntax"}])
        finally:
            self._data.discard(conn)
            self._update_publish_flag()
        return ws

    def _update_publish_flag(self) -> None:
        self.engine.publish_data = any(
            any(c.subs[k] for k in ("bars", "trades", "quotes")) for c in self._data
        )

    # ------------------------------------------------------------------------------------------------
    # /sim control API (and the same operations as Python methods)
    # ------------------------------------------------------------------------------------------------
    def state(self) -> dict[str, object]:
        e = self.engine
        now = self.clock.timestamp()
        return {
            "now": wire.ts_utc(now),
            "now_new_york": wire.ts_ny(now),
            "speed": self.clock.speed,
            "is_open": xnys().is_open(now),
            "orders": len(e.orders),
            "open_orders": sum(1 for o in e.orders.values() if o.is_open),
            "fills": len(e.executions),
            "positions": {s: p.qty for s, p in sorted(e.positions.items())},
            "cash": wire.dec(round(e.cash, 2)),
            "equity": wire.dec(round(e.equity(), 2)),
            "requests": len(e.requests),
            "faults": self.faults.describe(),
            "partial_fills": e.partial_fills,
            "reject_next_orders": e.reject_next_orders,
            "connections": {"trading": len(self._trading), "data": len(self._data)},
        }

    def inject_http_fault(self, status: int, count: int = 1, paths: str = "", after: bool = False) -> None:
        self.faults.add_http(HttpFault(status, count, paths, after))

    def set_latency(self, ms: int) -> None:
        """Wall-clock delay on every REST response and virtual order-arrival delay."""
        self.faults.latency_ms = ms
        self.engine.latency_ms = ms

    def set_partial_fills(self, on: bool) -> None:
        self.engine.partial_fills = on

    def reject_next_orders(self, n: int) -> None:
        self.engine.reject_next_orders = n

    def set_forbidden(self, on: bool) -> None:
        self.faults.forbidden = on

    def drop_streams(self, which: str = "all") -> int:
        """Abort open websocket connections ("trading", "data" or "all"); returns how many."""
        conns: list[Conn] = []
        if which in ("trading", "all"):
            conns += list(self._trading)
        if which in ("data", "all"):
            conns += list(self._data)
        loop = self._loop
        if loop is None:
            return 0
        for conn in conns:
            loop.call_soon_threadsafe(conn.abort)
        return len(conns)

    def clear_faults(self) -> None:
        self.faults.clear()
        self.engine.reject_next_orders = 0
        self.engine.partial_fills = self.cfg.partial_fills
        self.engine.latency_ms = self.cfg.latency_ms

    def apply_faults(self, body: dict[str, object]) -> None:
        """The POST /sim/faults body (see docs/simulator.md)."""
        if body.get("clear"):
            self.clear_faults()
        if "http_status" in body:
            self.inject_http_fault(
                int(str(body["http_status"])),
                int(str(body.get("count", 1))),
                str(body.get("paths") or ""),
                bool(body.get("after", False)),
            )
        if "latency_ms" in body:
            self.set_latency(int(str(body["latency_ms"])))
        if "partial_fills" in body:
            self.set_partial_fills(bool(body["partial_fills"]))
        if "reject_next_orders" in body:
            self.reject_next_orders(int(str(body["reject_next_orders"])))
        if "forbidden" in body:
            self.set_forbidden(bool(body["forbidden"]))
        if "drop_streams" in body:
            self.drop_streams(str(body["drop_streams"]))

    async def _sim_state(self, request: web.Request) -> web.Response:
        return _json(self.state())

    async def _sim_clock(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("body must be an object")
            if "advance_seconds" in body:
                await asyncio.to_thread(self.clock.advance, float(body["advance_seconds"]))
            if "advance_to" in body:
                when = dt.datetime.fromisoformat(str(body["advance_to"]).replace("Z", "+00:00"))
                await asyncio.to_thread(
                    self.clock.advance_to, when if when.tzinfo else when.replace(tzinfo=NEW_YORK)
                )
            if "speed" in body:
                self.clock.set_speed(float(body["speed"]))
        except (ValueError, TypeError) as e:
            return _json({"code": 40010001, "message": str(e)}, status=422)
        return _json(self.state())

    async def _sim_faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("body must be an object")
            self.apply_faults(body)
        except (ValueError, TypeError) as e:
            return _json({"code": 40010001, "message": str(e)}, status=422)
        return _json(self.state())

    async def _sim_requests(self, request: web.Request) -> web.Response:
        return _json(
            [
                {"t": wire.ts_utc(r.t), "ts": r.t, "method": r.method, "path": r.path, "status": r.status}
                for r in list(self.engine.requests)
            ]
        )

    async def _sim_fills(self, request: web.Request) -> web.Response:
        return _json(
            [{**wire.activity_json(x), "execution_id": x.execution_id} for x in list(self.engine.executions)]
        )
