"""The trading routes (REST v2): account, clock, calendar, assets, orders, positions, activities.

Each handler reads the request, asks the exchange, and answers with the wire's JSON; the exchange's
refusals (ApiError) become Alpaca's error bodies in the app's middleware.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from ..market.calendar import MarketCalendar
from . import wire
from .errors import ApiError, invalid, not_found
from .exchange import Exchange
from .models import OrderView
from .orders import parse_order_request
from .queries import query_bool, query_int, query_time
from .responses import error_response, json_response

ACTIVITIES_PAGE = 100  # page_size of account activities (default and maximum)


class TradingRoutes:
    def __init__(self, exchange: Exchange, calendar: MarketCalendar) -> None:
        self.exchange = exchange
        self.calendar = calendar

    def register(self, r: web.UrlDispatcher) -> None:
        r.add_get("/v2/account", self.account)
        r.add_get("/v2/account/configurations", self.account_configurations)
        r.add_get("/v2/account/activities", self.activities)
        r.add_get("/v2/account/activities/{activity_type}", self.activities)
        r.add_get("/v2/clock", self.clock)
        r.add_get("/v2/calendar", self.sessions)
        r.add_get("/v2/assets", self.assets)
        r.add_get("/v2/assets/{symbol}", self.asset)
        r.add_post("/v2/orders", self.submit)
        r.add_get("/v2/orders", self.list_orders)
        r.add_delete("/v2/orders", self.cancel_all)
        r.add_get("/v2/orders:by_client_order_id", self.by_client_id)
        r.add_get("/v2/orders/{order_id}", self.get_order)
        r.add_patch("/v2/orders/{order_id}", self.replace)
        r.add_delete("/v2/orders/{order_id}", self.cancel)
        r.add_get("/v2/positions", self.positions)
        r.add_delete("/v2/positions", self.close_all)
        r.add_get("/v2/positions/{symbol}", self.position)
        r.add_delete("/v2/positions/{symbol}", self.close_position)

    # -- account, clock, calendar, assets -----------------------------------------------------------
    async def account(self, request: web.Request) -> web.Response:
        ex = self.exchange
        legacy = bool(ex.rules.legacy_pdt)
        return json_response(wire.account_json(ex.account_view(), ex.now, legacy))

    async def account_configurations(self, request: web.Request) -> web.Response:
        return json_response(wire.ACCOUNT_CONFIGURATIONS)  # read-only here

    async def clock(self, request: web.Request) -> web.Response:
        now = self.exchange.now
        cal = self.calendar
        return json_response(wire.clock_json(now, cal.is_open(now), cal.next_open(now), cal.next_close(now)))

    async def sessions(self, request: web.Request) -> web.Response:
        q = request.query
        cal = self.calendar
        try:
            start = dt.date.fromisoformat(q["start"][:10]) if q.get("start") else cal.first_date
            end = dt.date.fromisoformat(q["end"][:10]) if q.get("end") else cal.last_date
        except ValueError:
            raise invalid("invalid date") from None
        return json_response(
            [wire.calendar_json(s, cal.settlement_date(s.date)) for s in cal.sessions_between(start, end)]
        )

    async def assets(self, request: web.Request) -> web.Response:
        status = request.query.get("status")
        rows = [wire.asset_json(a) for _, a in sorted(self.exchange.assets.items())]
        if status and status != "active":
            rows = []
        return json_response(rows)

    async def asset(self, request: web.Request) -> web.Response:
        sym = request.match_info["symbol"].upper()
        assets = self.exchange.assets
        a = assets.get(sym) or next((x for x in assets.values() if x.id == sym.lower()), None)
        if a is None:
            return error_response(not_found("asset not found"))
        return json_response(wire.asset_json(a))

    # -- orders -------------------------------------------------------------------------------------
    async def submit(self, request: web.Request) -> web.Response:
        order = self.exchange.submit(parse_order_request(await _body(request)))
        return json_response(wire.order_view_json(order))

    async def list_orders(self, request: web.Request) -> web.Response:
        q = request.query
        status = q.get("status", "open")
        if status not in ("open", "closed", "all"):
            raise invalid("invalid status")
        symbols = (
            {s.strip().upper() for s in q["symbols"].split(",") if s.strip()} if q.get("symbols") else None
        )
        nested = query_bool(q.get("nested"))
        rows = self.exchange.list_orders(
            status=status,
            limit=query_int(q.get("limit"), 50, "limit", 1, 500),
            after=_time(q.get("after")),
            until=_time(q.get("until")),
            direction="asc" if q.get("direction", "desc") == "asc" else "desc",
            nested=nested,
            symbols=symbols,
            side=q.get("side"),
        )
        views = [self.exchange.view(o) if nested else OrderView(o) for o in rows]
        return json_response([wire.order_view_json(v) for v in views])

    async def by_client_id(self, request: web.Request) -> web.Response:
        order = self.exchange.get_by_client_order_id(request.query.get("client_order_id", ""))
        return json_response(wire.order_view_json(self.exchange.view(order)))

    async def get_order(self, request: web.Request) -> web.Response:
        order = self.exchange.get_order(request.match_info["order_id"])
        return json_response(wire.order_view_json(self.exchange.view(order)))

    async def replace(self, request: web.Request) -> web.Response:
        new = self.exchange.replace_order(request.match_info["order_id"], await _body(request))
        return json_response(wire.order_view_json(self.exchange.view(new)))

    async def cancel(self, request: web.Request) -> web.Response:
        self.exchange.cancel_order(request.match_info["order_id"])
        return web.Response(status=204)

    async def cancel_all(self, request: web.Request) -> web.Response:
        canceled = self.exchange.cancel_all()
        body = [wire.cancel_result_json(self.exchange.view(o)) for o in canceled]
        return json_response(body, status=207)

    # -- positions ----------------------------------------------------------------------------------
    async def positions(self, request: web.Request) -> web.Response:
        ex = self.exchange
        return json_response([self._position_json(s) for s in sorted(ex.positions)])

    async def position(self, request: web.Request) -> web.Response:
        return json_response(self._position_json(request.match_info["symbol"]))

    def _position_json(self, symbol: str) -> dict[str, object]:
        ex = self.exchange
        p = ex.position(symbol)
        return wire.position_json(p, ex.mark(p.symbol), ex.lastday.get(p.symbol, ex.mark(p.symbol)))

    async def close_position(self, request: web.Request) -> web.Response:
        q = request.query
        qty = int(float(q["qty"])) if q.get("qty") else None
        pct = float(q["percentage"]) if q.get("percentage") else None
        view = self.exchange.close_position(request.match_info["symbol"], qty=qty, percentage=pct)
        return json_response(wire.order_view_json(view))

    async def close_all(self, request: web.Request) -> web.Response:
        cancel = request.query.get("cancel_orders")
        results = self.exchange.close_all(cancel_orders=cancel is None or query_bool(cancel))
        body = [wire.close_result_json(sym, r) for sym, r in results]
        return json_response(body, status=207)

    # -- activities ---------------------------------------------------------------------------------
    async def activities(self, request: web.Request) -> web.Response:
        """GET /v2/account/activities[/FILL]: FILL activities, paged by id (docs account-activities.md)."""
        q = request.query
        kind = request.match_info.get("activity_type") or q.get("activity_types") or "FILL"
        if "FILL" not in kind.upper().split(","):
            return json_response([])
        date = None
        if q.get("date"):
            try:
                date = dt.date.fromisoformat(q["date"][:10])
            except ValueError:
                raise invalid("invalid date") from None
        page_size = (
            query_int(q.get("page_size"), ACTIVITIES_PAGE, "page_size", 1, ACTIVITIES_PAGE)
            if q.get("page_size") or not date
            else None
        )
        fills = self.exchange.fills(
            date=date,
            after=_time(q.get("after")),
            until=_time(q.get("until")),
            direction="asc" if q.get("direction") == "asc" else "desc",
        )
        rows = [wire.activity_json(e) for e in fills]
        token = q.get("page_token")
        if token:
            ids = [str(a["id"]) for a in rows]
            if token in ids:
                rows = rows[ids.index(token) + 1 :]
        return json_response(rows if page_size is None else rows[:page_size])


async def _body(request: web.Request) -> object:
    try:
        return await request.json()
    except ValueError:
        raise ApiError(400, 40010000, "request body format is invalid") from None


def _time(text: str | None) -> float | None:
    return query_time(text, lambda bad: invalid(f"invalid timestamp {bad}"))
