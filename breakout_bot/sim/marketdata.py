"""Market data v2 reads over the bars (market-data-api.json: stock_bars_resp_single / _multi,
latest bars/trades/quotes). Only bars that have closed on the virtual clock are ever served."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

from ..core.model import NEW_YORK
from . import wire
from .engine import Engine
from .errors import ApiError

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000
_TF = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D)$")


def bad_request(message: str) -> ApiError:
    """Market-data errors carry a message (and here a code too, so APIError.code is meaningful)."""
    return ApiError(400, 40010001, message)


def parse_time(text: str | None, default: float) -> float:
    """RFC3339 or YYYY-MM-DD (a date means New York midnight)."""
    if not text:
        return default
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(0, 0), NEW_YORK).timestamp()
        d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"invalid time {text}") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return d.timestamp()


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


def _bars_for(engine: Engine, symbol: str, n: int, unit: str, start: float, end: float) -> list[str]:
    """Bars (as JSON text) with start <= t <= end, aggregated to the timeframe (buckets aligned to the
    clock; daily bars stamped at New York midnight like Alpaca's)."""
    out: list[str] = []
    slices = engine.visible_bars(
        symbol, start if unit != "Day" else start - 86_400, end + 86_400 * (unit == "Day")
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
        out.append(
            json.dumps(wire.bar_json(key, o, h, low, c, int(v), int(cnt), round(pv / v, 4) if v else c))
        )
    return out


def _encode(offset: int) -> str:
    return base64.b64encode(f"sim|{offset}".encode()).decode()


def _decode(token: str) -> int:
    try:
        return int(base64.b64decode(token.encode()).decode().split("|")[1])
    except (ValueError, IndexError, UnicodeDecodeError):
        raise bad_request("invalid page_token") from None


def bars(engine: Engine, symbols: list[str], query: dict[str, str], multi: bool) -> str:
    """GET /v2/stocks/{symbol}/bars and /v2/stocks/bars?symbols= with limit/page_token/sort.
    Returns the response body as JSON text (assembled from cached per-bar JSON)."""
    n, unit = parse_timeframe(query.get("timeframe"))
    today = dt.datetime.fromtimestamp(engine.now, NEW_YORK).date()
    start = parse_time(query.get("start"), dt.datetime.combine(today, dt.time(0, 0), NEW_YORK).timestamp())
    end = min(parse_time(query.get("end"), engine.now), engine.now)
    try:
        limit = int(query.get("limit") or DEFAULT_LIMIT)
    except ValueError:
        raise bad_request("invalid limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request(f"invalid limit: must be between 1 and {MAX_LIMIT}")
    sort = query.get("sort") or "asc"
    if sort not in ("asc", "desc"):
        raise bad_request("invalid sort")
    flat: list[tuple[str, str]] = []
    for sym in sorted(set(symbols)) if multi else symbols:
        rows = _bars_for(engine, sym, n, unit, start, end)
        if sort == "desc":
            rows.reverse()
        flat.extend((sym, r) for r in rows)
    offset = _decode(query["page_token"]) if query.get("page_token") else 0
    page = flat[offset : offset + limit]
    token = _encode(offset + limit) if offset + limit < len(flat) else None
    tail = f'"next_page_token": {json.dumps(token)}'
    if not multi:
        body = ",".join(r for _, r in page)
        return f'{{"bars": [{body}], "symbol": {json.dumps(symbols[0])}, {tail}}}'
    grouped: dict[str, list[str]] = {}
    for sym, r in page:
        grouped.setdefault(sym, []).append(r)
    parts = ", ".join(f"{json.dumps(sym)}: [{','.join(rows)}]" for sym, rows in grouped.items())
    return f'{{"bars": {{{parts}}}, {tail}}}'


def latest_bar(engine: Engine, symbol: str) -> dict[str, object] | None:
    slices = engine.visible_bars(symbol, engine.now - 14 * 86_400, engine.now)
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


def latest_trade(engine: Engine, symbol: str) -> dict[str, object] | None:
    """market-data-api.json stock_trade: t, x, p, s, c, i, z."""
    lt = engine.last_trade.get(symbol)
    if lt is None:
        price = engine.price(symbol)
        if price is None:
            return None
        lt = (engine.now, price, 100)
    t, p, s = lt
    return {"t": wire.ts_utc(t), "x": "V", "p": p, "s": s, "c": ["@"], "i": int(t), "z": "C"}


def latest_quote(engine: Engine, symbol: str) -> dict[str, object] | None:
    """market-data-api.json stock_quote: one cent either side of the last trade."""
    tr = latest_trade(engine, symbol)
    if tr is None:
        return None
    p = float(str(tr["p"]))
    return {
        "t": tr["t"],
        "ax": "V",
        "ap": round(p + 0.01, 4),
        "as": 1,
        "bx": "V",
        "bp": round(p - 0.01, 4),
        "bs": 1,
        "c": ["R"],
        "z": "C",
    }
