"""The market-data routes: v2 bars over the bars (market-data-api.json: stock_bars_resp_single /
_multi) and the latest bar, trade and quote. Only bars that have closed on the virtual clock are
ever served, as the `feed` shows them (sim/feeds.py: iex is thinner). A free plan (no SIP subscription)
may read SIP bars only 15 minutes old: "For historical queries, the `end` parameter must be at least 15
minutes old to query SIP data without a subscription", and the latest endpoints "require a subscription"
for SIP (Market Data FAQ); else 403 "subscription does not permit querying recent SIP data"."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..core.model import NEW_YORK
from . import wire
from .errors import ApiError, sip_not_permitted
from .exchange import Exchange
from .queries import query_symbols, query_time
from .responses import json_response, raw_json

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000
SIP_DELAY_S = 15 * 60  # what a free plan may read of SIP: data at least this old
FEEDS = ("iex", "sip", "otc", "boats", "overnight", "delayed_sip")
_TF = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D)$")


def bad_request(message: str) -> ApiError:
    """Market-data errors carry a message (and here a code too, so APIError.code is meaningful)."""
    return ApiError(400, 40010001, message)


def _time(text: str | None, default: float) -> float:
    t = query_time(text, lambda bad: bad_request(f"invalid time {bad}"))
    return default if t is None else t


def parse_timeframe(text: str | None) -> tuple[int, str]:
    m = _TF.match(text or "")
    if not m:
        raise bad_request(f"invalid timeframe {text}")
    n, unit = int(m.group(1)), m.group(2)
    unit = {"T": "Min", "H": "Hour", "D": "Day"}.get(unit, unit)
    if (
        (unit == "Min" and not 1 <= n <= 59)
        or (unit == "Hour" and not 1 <= n <= 23)
        or (unit == "Day" and n != 1)
    ):
        raise bad_request(f"invalid timeframe {text}")
    return n, unit


def feed_of(engine: Exchange, query: dict[str, str]) -> str:
    """The request's feed: sip by default, iex for a plan without SIP (Alpaca's defaults); refused
    (403) when a free plan asks for recent SIP data."""
    feed = query.get("feed") or ("iex" if engine.free_plan else "sip")
    if feed not in FEEDS:
        raise bad_request(f"invalid feed {feed}")
    return "sip" if feed == "delayed_sip" else feed


def check_sip(engine: Exchange, feed: str, end: float) -> None:
    if feed == "sip" and engine.free_plan and end > engine.now - SIP_DELAY_S:
        raise sip_not_permitted()


def _bars_for(
    engine: Exchange, symbol: str, n: int, unit: str, start: float, end: float, feed: str = "sip"
) -> list[str]:
    """Bars (as JSON text) with start <= t <= end, aggregated to the timeframe (buckets aligned to the
    clock; daily bars stamped at New York midnight like Alpaca's)."""
    out: list[str] = []
    slices = engine.visible_bars(
        symbol, start if unit != "Day" else start - 86_400, end + 86_400 * (unit == "Day"), feed
    )
    if unit == "Min" and n == 1:
        for b, lo, hi in slices:
            out.extend(wire.bar_rows(b)[lo:hi])
        return out
    width = n * (60 if unit == "Min" else 3600)
    agg: dict[float, list[float]] = {}
    for b, lo, hi in slices:
        for i in range(lo, hi):
            t = float(b.t[i])
            if unit == "Day":
                key = dt.datetime.combine(
                    dt.datetime.fromtimestamp(t, NEW_YORK).date(), dt.time(0, 0), NEW_YORK
                ).timestamp()
            else:
                key = t - (t % width)
            o, h, low, c, v, cnt, vw = (
                float(b.o[i]),
                float(b.h[i]),
                float(b.low[i]),
                float(b.c[i]),
                float(b.v[i]),
                float(b.n[i]),
                float(b.vw[i]),
            )
            a = agg.get(key)
            if a is None:
                agg[key] = [o, h, low, c, v, cnt, vw * v]
            else:
                a[1] = max(a[1], h)
                a[2] = min(a[2], low)
                a[3] = c
                a[4] += v
                a[5] += cnt
                a[6] += vw * v
    for key in sorted(agg):
        if not start <= key <= end:
            continue
        o, h, low, c, v, cnt, pv = agg[key]
        out.append(wire.bar_text(key, o, h, low, c, int(v), int(cnt), round(pv / v, 4) if v else c))
    return out


def _encode(offset: int) -> str:
    return base64.b64encode(f"sim|{offset}".encode()).decode()


def _decode(token: str) -> int:
    try:
        return int(base64.b64decode(token.encode()).decode().split("|")[1])
    except (ValueError, IndexError, UnicodeDecodeError):
        raise bad_request("invalid page_token") from None


def bars(engine: Exchange, symbols: list[str], query: dict[str, str], multi: bool) -> str:
    """GET /v2/stocks/{symbol}/bars and /v2/stocks/bars?symbols= with limit/page_token/sort.
    Returns the response body as JSON text (assembled from cached per-bar JSON)."""
    n, unit = parse_timeframe(query.get("timeframe"))
    today = dt.datetime.fromtimestamp(engine.now, NEW_YORK).date()
    start = _time(query.get("start"), dt.datetime.combine(today, dt.time(0, 0), NEW_YORK).timestamp())
    end = min(_time(query.get("end"), engine.now), engine.now)
    try:
        limit = int(query.get("limit") or DEFAULT_LIMIT)
    except ValueError:
        raise bad_request("invalid limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request(f"invalid limit: must be between 1 and {MAX_LIMIT}")
    sort = query.get("sort") or "asc"
    if sort not in ("asc", "desc"):
        raise bad_request("invalid sort")
    feed = feed_of(engine, query)
    check_sip(engine, feed, end)
    flat: list[tuple[str, str]] = []
    for sym in sorted(set(symbols)) if multi else symbols:
        rows = _bars_for(engine, sym, n, unit, start, end, feed)
        if sort == "desc":
            rows.reverse()
        flat.extend((sym, r) for r in rows)
    offset = _decode(query["page_token"]) if query.get("page_token") else 0
    page = flat[offset : offset + limit]
    token = _encode(offset + limit) if offset + limit < len(flat) else None
    if not multi:
        return wire.bars_text([r for _, r in page], symbols[0], token)
    return wire.multi_bars_text(page, token)


def latest_bar(engine: Exchange, symbol: str, feed: str = "sip") -> dict[str, object] | None:
    slices = engine.visible_bars(symbol, engine.now - 14 * 86_400, engine.now, feed)
    if not slices:
        return None
    b, _, hi = slices[-1]
    i = hi - 1
    return wire.bar_json(
        float(b.t[i]),
        float(b.o[i]),
        float(b.h[i]),
        float(b.low[i]),
        float(b.c[i]),
        int(b.v[i]),
        int(b.n[i]),
        float(b.vw[i]),
    )


def latest_trade(engine: Exchange, symbol: str, feed: str = "sip") -> dict[str, object] | None:
    lt = engine.last_trade.get(symbol)
    if lt is None:
        price = engine.price(symbol)
        if price is None:
            return None
        lt = (engine.now, price, 100)
    return wire.trade_json(*lt)


def latest_quote(engine: Exchange, symbol: str, feed: str = "sip") -> dict[str, object] | None:
    tr = latest_trade(engine, symbol, feed)
    if tr is None:
        return None
    return wire.quote_json(str(tr["t"]), float(str(tr["p"])))


LATEST = {"bar": latest_bar, "trade": latest_trade, "quote": latest_quote}


class DataRoutes:
    """GET /v2/stocks/...: bars (one symbol or many) and the latest bar, trade and quote."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    def register(self, r: web.UrlDispatcher) -> None:
        r.add_get("/v2/stocks/bars", self.bars_multi)
        for what in LATEST:
            r.add_get(f"/v2/stocks/{what}s/latest", self._latest_multi(what))
        r.add_get("/v2/stocks/{symbol}/bars", self.bars_single)
        for what in LATEST:
            r.add_get(f"/v2/stocks/{{symbol}}/{what}s/latest", self._latest_single(what))

    async def bars_single(self, request: web.Request) -> web.Response:
        sym = request.match_info["symbol"].upper()
        return raw_json(bars(self.exchange, [sym], dict(request.query), multi=False))

    async def bars_multi(self, request: web.Request) -> web.Response:
        syms = query_symbols(request.query.get("symbols"))
        if not syms:
            raise bad_request("symbols is required")
        return raw_json(bars(self.exchange, syms, dict(request.query), multi=True))

    def _latest_feed(self, request: web.Request) -> str:
        """The latest endpoints: SIP needs a subscription (any age)."""
        feed = feed_of(self.exchange, dict(request.query))
        check_sip(self.exchange, feed, self.exchange.now)
        return feed

    def _latest_single(self, what: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        fn = LATEST[what]

        async def handler(request: web.Request) -> web.Response:
            sym = request.match_info["symbol"].upper()
            feed = self._latest_feed(request)
            return json_response(wire.latest_json(sym, what, fn(self.exchange, sym, feed)))

        return handler

    def _latest_multi(self, what: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        fn = LATEST[what]

        async def handler(request: web.Request) -> web.Response:
            syms = query_symbols(request.query.get("symbols"))
            feed = self._latest_feed(request)
            out = {s: v for s in syms if (v := fn(self.exchange, s, feed)) is not None}
            return json_response({f"{what}s": out})

        return handler
