"""The two websockets: trading `trade_updates` (/stream) and market data v2 (/v2/{feed}): the connections,
their handshakes, and publishing what the exchange emits.

Trading stream (docs api-references__trading-api__streaming.md): JSON in BINARY frames (msgpack when
the client's handshake says Content-Type: application/msgpack). Data stream (docs
api-references__market-data-api__stock-pricing-data__realtime.md): arrays of messages, JSON text
frames by default, msgpack binary with that header; msgpack `t` is the Timestamp ext type
(alpaca-trade-api stream._cast reads t.seconds / t.nanoseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack
from aiohttp import WSMsgType, web

from . import wire
from .config import SimConfig
from .models import Published, TradeEvent

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
        channel = {"b": "bars", "t": "trades", "q": "quotes"}.get(str(msg.get("T")))
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

    def __init__(self, cfg: SimConfig, on_subscriptions: Callable[[bool], None]) -> None:
        self.cfg = cfg
        self.trading: set[Conn] = set()
        self.data: set[Conn] = set()
        self._on_subscriptions = on_subscriptions  # is anyone subscribed to market data?

    def register(self, r: web.UrlDispatcher) -> None:
        r.add_get("/stream", self.trading_stream)
        r.add_get("/stream/", self.trading_stream)
        for feed in ("iex", "sip", "test"):
            r.add_get(f"/v2/{feed}", self.data_stream)

    def subscribed(self) -> bool:
        return any(any(c.subs[k] for k in ("bars", "trades", "quotes")) for c in self.data)

    async def publish(self, batch: list[Published]) -> None:
        """Send what the exchange emitted: trade updates to listeners, data to subscribers."""
        if not batch:
            return
        data_msgs = [
            m for item in batch if not isinstance(item, TradeEvent) for m in wire.stream_messages(item)
        ]
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
        if data_msgs:
            for conn in list(self.data):
                mine = [m for m in data_msgs if conn.wants(m)]
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

    async def data_stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Conn(ws, request, wants_msgpack(request))
        self.data.add(conn)
        try:
            await conn.send_data(wire.data_success("connected"))
            async for msg in ws:
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
