"""The two websockets: trading `trade_updates` (/stream) and market data v2 (/v2/{feed}): the connections,
their handshakes, and publishing what the exchange emits.

Trading stream (docs api-references__trading-api__streaming.md): JSON in BINARY frames (msgpack when
the client's handshake says Content-Type: application/msgpack). Data stream (docs
api-references__market-data-api__stock-pricing-data__realtime.md): arrays of messages, JSON text
frames by default, msgpack binary with that header; msgpack `t` is the Timestamp ext type
(alpaca-trade-api stream._cast reads t.seconds / t.nanoseconds). Its rules, from the same page:
one authenticated connection per key pair and feed endpoint (a second gets 406 "connection limit
exceeded" as the reply to `auth`; per key pair: alpaca-trade-api-csharp #306, per feed endpoint:
alpaca-backtrader-api #319), a feed the plan lacks 409 "insufficient subscription" at `auth`, a client
that does not authenticate within a few seconds 404 "auth timeout". Bars are the feed's own (sim/feeds.py:
IEX is thinner); a bar recomputed with late trades comes again as `u`, on the `updatedBars` channel only
(alpaca-trade-api-python PR #574).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack
from aiohttp import WSMessage, WSMsgType, web

from . import wire
from .config import SimConfig
from .exchange import Exchange
from .feeds import index_of, is_revised
from .models import BarPrint, Published, TradeEvent

DATA_CHANNELS = (
    "trades",
    "quotes",
    "bars",
    "updatedBars",
    "dailyBars",
    "statuses",
    "lulds",
    "corrections",
    "cancelErrors",
)


def wants_msgpack(request: web.Request) -> bool:
    return request.headers.get("Content-Type", "").lower().startswith("application/msgpack")


def decode(msg_data: str | bytes, use_msgpack: bool) -> object:
    if isinstance(msg_data, bytes) and use_msgpack:
        return msgpack.unpackb(msg_data)
    return json.loads(msg_data)


@dataclass(eq=False)
class Conn:
    ws: web.WebSocketResponse
    request: web.Request
    use_msgpack: bool
    feed: str = ""  # data stream: iex | sip | test
    authed: bool = False
    listening: bool = False  # trading: listening to trade_updates
    subs: dict[str, set[str]] = field(default_factory=lambda: {c: set() for c in DATA_CHANNELS})

    async def send_trading(self, obj: dict[str, object]) -> None:
        """Trading stream: always a BINARY frame (UTF-8 JSON, or msgpack)."""
        payload = msgpack.packb(obj) if self.use_msgpack else json.dumps(obj).encode()
        await self.ws.send_bytes(payload)

    async def send_data(self, msgs: list[dict[str, object]]) -> None:
        """Data stream: one array per frame; JSON text or msgpack binary."""
        if self.use_msgpack:
            out = [wire.stream_time(m, msgpack_time=True) for m in msgs]
            await self.ws.send_bytes(msgpack.packb(out))
        else:
            await self.ws.send_str(json.dumps([wire.stream_time(m, msgpack_time=False) for m in msgs]))

    def wants(self, msg: dict[str, object]) -> bool:
        channel = {"b": "bars", "u": "updatedBars", "t": "trades", "q": "quotes"}.get(str(msg.get("T")))
        if channel is None:
            return False
        symbols = self.subs[channel]
        return "*" in symbols or str(msg.get("S")) in symbols

    def abort(self) -> None:
        """Drop the connection without a closing handshake (a network failure, as the client sees it)."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        else:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().create_task(self.ws.close())


def apply_subscription(conn: Conn, request: dict[str, object], add: bool) -> None:
    for c in DATA_CHANNELS:
        raw = request.get(c)
        if not isinstance(raw, list):
            continue
        symbols = {str(s).upper() if s != "*" else "*" for s in raw}
        if add:
            conn.subs[c] |= symbols
        else:
            conn.subs[c] -= symbols


def is_text_or_binary(kind: WSMsgType) -> bool:
    return kind in (WSMsgType.TEXT, WSMsgType.BINARY)


WS_PATHS = frozenset({"/stream", "/stream/", "/v2/iex", "/v2/sip", "/v2/test"})


class Websockets:
    """The open connections of both websockets, their handlers, and the pump's publishing."""

    def __init__(self, cfg: SimConfig, exchange: Exchange, on_subscriptions: Callable[[bool], None]) -> None:
        self.cfg = cfg
        self.exchange = exchange
        self.trading: set[Conn] = set()
        self.data: set[Conn] = set()
        self.occupied: set[str] = set()  # feeds whose one connection another client holds (a fault)
        self.auth_timeout = cfg.data_auth_timeout_s
        self._on_subscriptions = on_subscriptions  # is anyone subscribed to market data?

    def register(self, r: web.UrlDispatcher) -> None:
        r.add_get("/stream", self.trading_stream)
        r.add_get("/stream/", self.trading_stream)
        for feed in ("iex", "sip", "test"):
            r.add_get(f"/v2/{feed}", self.data_stream)

    def subscribed(self) -> bool:
        return any(any(c.subs[k] for k in ("bars", "updatedBars", "trades", "quotes")) for c in self.data)

    def _feed_messages(self, batch: list[Published], feed: str) -> list[dict[str, object]]:
        """The data messages of `batch` as `feed` shows them."""
        cfg, exchange = self.cfg, self.exchange
        out: list[dict[str, object]] = []
        for item in batch:
            if isinstance(item, TradeEvent):
                continue
            if isinstance(item, BarPrint):
                day = exchange.feed_day(item.day, feed)
                i = index_of(day, float(item.day.t[item.index])) if day is not item.day else item.index
                if i is None:
                    continue  # no print on this feed in that minute: no bar
                revised = is_revised(cfg.seed, item.symbol, float(day.t[i]), cfg.updated_bar_pct)
                item = BarPrint(item.symbol, day, i, item.updated)
                out.extend(wire.stream_messages(item, revised))
            else:
                out.extend(wire.stream_messages(item))
        return out

    async def publish(self, batch: list[Published]) -> None:
        """Send what the exchange emitted: trade updates to listeners, data to subscribers."""
        if not batch:
            return
        by_feed: dict[str, list[dict[str, object]]] = {}
        for item in batch:
            if not isinstance(item, TradeEvent):
                continue
            msg = wire.trade_update_json(item)
            for conn in list(self.trading):
                if conn.listening:
                    try:
                        await conn.send_trading(wire.trading_message("trade_updates", msg))
                    except Exception:  # a dead socket: the client will reconnect
                        self.trading.discard(conn)
        if any(not isinstance(item, TradeEvent) for item in batch):
            for conn in list(self.data):
                if conn.feed not in by_feed:
                    by_feed[conn.feed] = self._feed_messages(batch, conn.feed)
                mine = [m for m in by_feed[conn.feed] if conn.wants(m)]
                if mine:
                    try:
                        await conn.send_data(mine)
                    except Exception:
                        self.data.discard(conn)

    def connections(self, which: str) -> list[Conn]:
        conns: list[Conn] = []
        if which in ("trading", "all"):
            conns += list(self.trading)
        if which in ("data", "all"):
            conns += list(self.data)
        return conns

    async def trading_stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Conn(ws, request, wants_msgpack(request))
        self.trading.add(conn)
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
                    await conn.send_trading(wire.authorization_json(conn.authed, "authenticate"))
                elif action == "listen":
                    if not conn.authed:
                        await conn.send_trading(wire.authorization_json(False, "listen"))
                        continue
                    streams = data.get("streams") or []
                    conn.listening = isinstance(streams, list) and "trade_updates" in streams
                    await conn.send_trading(wire.listening_json(conn.listening))
        finally:
            self.trading.discard(conn)
        return ws

    def _auth_refusal(self, conn: Conn) -> tuple[int, str] | None:
        """Why an authentication with good keys is refused: the plan, or the one connection per feed."""
        if conn.feed == "sip" and self.exchange.free_plan:
            return 409, "insufficient subscription"
        if conn.feed in self.occupied or any(
            c.authed and c.feed == conn.feed for c in self.data if c is not conn
        ):
            return 406, "connection limit exceeded"
        return None

    async def _receive(self, conn: Conn, deadline: float) -> WSMessage | None:
        """The next message; None when the client did not authenticate in time (404, closed)."""
        loop = asyncio.get_running_loop()
        if conn.authed:
            return await conn.ws.receive()
        left = deadline - loop.time()
        try:
            if left > 0:
                return await conn.ws.receive(timeout=left)
        except asyncio.TimeoutError:
            pass
        await conn.send_data(wire.data_error(404, "auth timeout"))
        await conn.ws.close()
        return None

    async def data_stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Conn(ws, request, wants_msgpack(request), feed=request.path.rsplit("/", 1)[-1])
        self.data.add(conn)
        deadline = asyncio.get_running_loop().time() + self.auth_timeout
        try:
            await conn.send_data(wire.data_success("connected"))
            while True:
                msg = await self._receive(conn, deadline)
                if msg is None:
                    break
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                if not is_text_or_binary(msg.type):
                    continue
                try:
                    req = decode(msg.data, conn.use_msgpack)
                except ValueError:
                    await conn.send_data(wire.data_error(400, "invalid syntax"))
                    continue
                if not isinstance(req, dict):
                    await conn.send_data(wire.data_error(400, "invalid syntax"))
                    continue
                action = req.get("action")
                if action == "auth":
                    if conn.authed:
                        await conn.send_data(wire.data_error(403, "already authenticated"))
                    elif req.get("key") == self.cfg.key and req.get("secret") == self.cfg.secret:
                        refusal = self._auth_refusal(conn)
                        if refusal is not None:
                            await conn.send_data(wire.data_error(*refusal))
                            continue
                        conn.authed = True
                        await conn.send_data(wire.data_success("authenticated"))
                    else:
                        await conn.send_data(wire.data_error(402, "auth failed"))
                elif action in ("subscribe", "unsubscribe"):
                    if not conn.authed:
                        await conn.send_data(wire.data_error(401, "not authenticated"))
                        continue
                    apply_subscription(conn, req, add=action == "subscribe")
                    self._on_subscriptions(self.subscribed())
                    await conn.send_data(wire.subscription_json(conn.subs, DATA_CHANNELS))
                else:
                    await conn.send_data(wire.data_error(400, "invalid syntax"))
        finally:
            self.data.discard(conn)
            self._on_subscriptions(self.subscribed())
        return ws
