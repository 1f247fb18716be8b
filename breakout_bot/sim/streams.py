"""The two websockets: trading `trade_updates` (/stream) and market data v2 (/v2/{feed}).

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
from dataclasses import dataclass, field

import msgpack
from aiohttp import WSMsgType, web

from . import wire

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
            out = [_with_time(m, msgpack_time=True) for m in msgs]
            await self.ws.send_bytes(msgpack.packb(out))
        else:
            await self.ws.send_str(json.dumps([_with_time(m, msgpack_time=False) for m in msgs]))

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


def _with_time(msg: dict[str, object], msgpack_time: bool) -> dict[str, object]:
    t = msg.get("t")
    if not isinstance(t, float):
        return msg
    out = dict(msg)
    out["t"] = (
        wire.msgpack_timestamp(t)
        if msgpack_time
        else (wire.ts_bar(t) if msg.get("T") == "b" else wire.ts_utc(t))
    )
    return out


def subscription_message(conn: Conn) -> list[dict[str, object]]:
    msg: dict[str, object] = {"T": "subscription"}
    for c in DATA_CHANNELS:
        msg[c] = sorted(conn.subs[c])
    return [msg]


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
