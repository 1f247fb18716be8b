"""The simulator's control and fault API: /sim/* over HTTP (no auth, not rate limited), and the same
operations in Python (`server.control.inject_http_fault(...)`). See docs/simulator.md, "Control and
faults"."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

from aiohttp import web

from ..core.model import NEW_YORK
from ..market.calendar import MarketCalendar
from . import wire
from .clock import VirtualClock
from .config import SimConfig
from .exchange import Exchange
from .faults import FaultState, HttpFault
from .responses import json_response
from .websockets import Websockets


class Control:
    def __init__(
        self,
        cfg: SimConfig,
        clock: VirtualClock,
        exchange: Exchange,
        calendar: MarketCalendar,
        faults: FaultState,
        sockets: Websockets,
        drop: Callable[[str], int],
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.exchange = exchange
        self.calendar = calendar
        self.faults = faults
        self.sockets = sockets
        self._drop = drop  # abort open websocket connections on the server's loop

    def register(self, r: web.UrlDispatcher) -> None:
        r.add_get("/sim/state", self.get_state)
        r.add_post("/sim/clock", self.move_clock)
        r.add_post("/sim/faults", self.post_faults)
        r.add_get("/sim/requests", self.get_requests)
        r.add_get("/sim/fills", self.get_fills)

    # ------------------------------------------------------------------ in Python
    def state(self) -> dict[str, object]:
        e = self.exchange
        now = self.clock.timestamp()
        return {
            "now": wire.ts_utc(now),
            "now_new_york": wire.ts_ny(now),
            "speed": self.clock.speed,
            "is_open": self.calendar.is_open(now),
            "orders": len(e.orders),
            "open_orders": sum(1 for o in e.orders.values() if o.is_open),
            "fills": len(e.executions),
            "positions": {s: p.qty for s, p in sorted(e.positions.items())},
            "cash": wire.dec(round(e.account.cash, 2)),
            "equity": wire.dec(round(e.equity(), 2)),
            "requests": len(e.requests),
            "faults": self.faults.describe(),
            "partial_fills": e.partial_fills,
            "reject_next_orders": e.reject_next_orders,
            "connections": {"trading": len(self.sockets.trading), "data": len(self.sockets.data)},
        }

    def inject_http_fault(self, status: int, count: int = 1, paths: str = "", after: bool = False) -> None:
        self.faults.add_http(HttpFault(status, count, paths, after))

    def set_latency(self, ms: int) -> None:
        """Wall-clock delay on every REST response and virtual order-arrival delay."""
        self.faults.latency_ms = ms
        self.exchange.latency_ms = ms

    def set_partial_fills(self, on: bool) -> None:
        self.exchange.partial_fills = on

    def reject_next_orders(self, n: int) -> None:
        self.exchange.reject_next_orders = n

    def set_forbidden(self, on: bool) -> None:
        self.faults.forbidden = on

    def drop_streams(self, which: str = "all") -> int:
        """Abort open websocket connections ("trading", "data" or "all"); returns how many."""
        return self._drop(which)

    def clear_faults(self) -> None:
        self.faults.clear()
        self.exchange.reject_next_orders = 0
        self.exchange.partial_fills = self.cfg.partial_fills
        self.exchange.latency_ms = self.cfg.latency_ms

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

    # ------------------------------------------------------------------ over HTTP
    async def get_state(self, request: web.Request) -> web.Response:
        return json_response(self.state())

    async def move_clock(self, request: web.Request) -> web.Response:
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
            return json_response({"code": 40010001, "message": str(e)}, status=422)
        return json_response(self.state())

    async def post_faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("body must be an object")
            self.apply_faults(body)
        except (ValueError, TypeError) as e:
            return json_response({"code": 40010001, "message": str(e)}, status=422)
        return json_response(self.state())

    async def get_requests(self, request: web.Request) -> web.Response:
        return json_response(
            [
                {
                    "t": wire.ts_utc(r.t),
                    "ts": r.t,
                    "method": r.method,
                    "path": r.path,
                    "status": r.status,
                    "agent": r.agent,
                }
                for r in list(self.exchange.requests)
            ]
        )

    async def get_fills(self, request: web.Request) -> web.Response:
        return json_response(
            [
                {**wire.activity_json(x), "execution_id": x.execution_id}
                for x in list(self.exchange.executions)
            ]
        )
