"""All of the simulator's JSON, exactly as Alpaca sends it: decimals as strings, RFC3339 times, UUID ids.

The exchange works on models (sim/models.py, sim/account.py); everything a client reads is shaped here.
Each function cites the schema it follows. Market-data prices are JSON numbers (market-data spec);
trading-API money and quantities are strings (trading-api.json).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import msgpack

from ..core.margin import MIN_EQUITY_FOR_SHORTS
from ..core.model import NEW_YORK
from ..market.calendar import CalendarSession
from ..market.days import DayBars
from .account import AccountView
from .assets import Asset
from .errors import ApiError
from .feeds import late_volume
from .models import BarPrint, Execution, Order, OrderView, Position, TapePrint, TradeEvent

UTC = dt.timezone.utc


def dec(x: float | int | None) -> str | None:
    """A decimal string without float noise or trailing zeros: 150.0 -> "150", 0.1+0.2 -> "0.3"."""
    if x is None:
        return None
    d = Decimal(repr(round(float(x), 8))).normalize()
    text = format(d, "f")
    return "0" if text in ("-0", "") else text


def ts_utc(epoch: float | None) -> str | None:
    """RFC3339 UTC with microseconds, e.g. 2024-03-04T14:30:01.000000Z (Alpaca order timestamps)."""
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ts_bar(epoch: float) -> str:
    """Bar timestamps: whole seconds, Z (market-data-api.json stock_bar.t example)."""
    return dt.datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts_ny(epoch: float, fraction: bool = True) -> str:
    """RFC3339 with the America/New_York offset (GET /v2/clock)."""
    d = dt.datetime.fromtimestamp(epoch, NEW_YORK)
    return d.isoformat(timespec="microseconds" if fraction else "seconds")


def order_json(o: Order, legs: list[Order] | None = None, stream: bool = False) -> dict[str, object]:
    """trading-api.json components.schemas.Order (field list and order of EquityOrderResponse)."""
    out: dict[str, object] = {
        "id": o.id,
        "client_order_id": o.client_order_id,
        "created_at": ts_utc(o.created_at),
        "updated_at": ts_utc(o.updated_at),
        "submitted_at": ts_utc(o.submitted_at),
        "filled_at": ts_utc(o.filled_at),
        "expired_at": ts_utc(o.expired_at),
        "canceled_at": ts_utc(o.canceled_at),
        "failed_at": ts_utc(o.failed_at),
        "replaced_at": ts_utc(o.replaced_at),
        "replaced_by": o.replaced_by,
        "replaces": o.replaces,
        "asset_id": o.asset_id,
        "symbol": o.symbol,
        "asset_class": "us_equity",
        "notional": None,
        "qty": str(o.qty),
        "filled_qty": str(o.filled_qty),
        "filled_avg_price": dec(o.avg_price),
        "order_class": o.order_class,
        "order_type": o.type,
        "type": o.type,
        "side": o.side,
        "position_intent": o.position_intent or None,
        "time_in_force": o.time_in_force,
        "limit_price": dec(o.limit_price),
        "stop_price": dec(o.stop_price),
        "status": o.status,
        "extended_hours": o.extended_hours,
        "legs": [order_json(leg, stream=stream) for leg in legs] if legs else None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "subtag": None,
        "source": None,
    }
    if stream:
        # The streaming example (docs streaming.md) also carries cancel_requested_at.
        out["cancel_requested_at"] = ts_utc(o.canceled_at)
    return out


def order_view_json(view: OrderView, stream: bool = False) -> dict[str, object]:
    return order_json(view.order, list(view.legs) or None, stream=stream)


def trade_update_json(ev: TradeEvent) -> dict[str, object]:
    """A trade_updates event's `data`, with the order (and legs) as they were at the event."""
    order = order_json(ev.order, list(ev.legs) or None, stream=True)
    return trade_update(ev.event, order, ev.t, ev.execution, ev.position_qty, ev.event_id)


def trade_update(
    event: str,
    order: dict[str, object],
    ts: float,
    ex: Execution | None = None,
    position_qty: int | None = None,
    event_id: str | None = None,
) -> dict[str, object]:
    """Trading stream event data (docs api-references__trading-api__streaming.md): price, qty and
    position_qty are strings and present on fill/partial_fill only. `timestamp` is on every event
    (`new`: d-e-s-o/apca's recorded message; `pending_new`: QC Lean #41; `accepted`: alpaca-py #371, whose
    TradeUpdate requires it); `execution_id` on every event but `accepted` and `pending_new` (alpaca-py
    #371 lists it missing on `accepted`, QC Lean #41 shows it null on `pending_new`)."""
    data: dict[str, object] = {"event": event, "timestamp": ts_utc(ts), "order": order}
    if event_id is not None:
        data["execution_id"] = event_id
    if ex is not None:
        data["execution_id"] = ex.execution_id
        data["price"] = dec(ex.price)
        data["qty"] = str(ex.qty)
        data["position_qty"] = str(position_qty if position_qty is not None else 0)
    return data


def activity_id(ex: Execution) -> str:
    """'<New York time, YYYYmmddHHMMSSmmm>::<execution_id>' like trading-api.json TradingActivities
    example "20220202135509981::2d7be4ff-…" (transaction_time 18:55:09.981Z = 13:55:09.981 New York).
    The part after '::' IS the trade_updates execution_id, so stream and REST fills dedupe on it."""
    local = dt.datetime.fromtimestamp(ex.time, NEW_YORK)
    return local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}::{ex.execution_id}"


def activity_json(ex: Execution) -> dict[str, object]:
    """trading-api.json components.schemas.TradingActivities."""
    return {
        "id": activity_id(ex),
        "activity_type": "FILL",
        "transaction_time": ts_utc(ex.time),
        "type": ex.kind,
        "price": dec(ex.price),
        "qty": str(ex.qty),
        "side": ex.side,
        "symbol": ex.symbol,
        "leaves_qty": str(ex.leaves_qty),
        "order_id": ex.order_id,
        "cum_qty": str(ex.cum_qty),
        "order_status": ex.order_status,
    }


def position_json(p: Position, price: float, lastday: float) -> dict[str, object]:
    """trading-api.json components.schemas.Position (all numbers as strings; side long|short).
    Intraday figures are measured against lastday_price (the previous session's last trade)."""
    qty = p.qty
    market_value = qty * price
    cost_basis = qty * p.avg_entry_price
    upl = market_value - cost_basis
    intraday_base = qty * lastday
    return {
        "asset_id": p.asset_id,
        "symbol": p.symbol,
        "exchange": "NASDAQ",
        "asset_class": "us_equity",
        "asset_marginable": True,
        "avg_entry_price": dec(p.avg_entry_price),
        "qty": str(qty),
        "qty_available": str(qty),
        "side": "long" if qty > 0 else "short",
        "market_value": dec(market_value),
        "cost_basis": dec(cost_basis),
        "unrealized_pl": dec(upl),
        "unrealized_plpc": dec(upl / abs(cost_basis) if cost_basis else 0.0),
        "unrealized_intraday_pl": dec(market_value - intraday_base),
        "unrealized_intraday_plpc": dec(
            (market_value - intraday_base) / abs(intraday_base) if intraday_base else 0
        ),
        "current_price": dec(price),
        "lastday_price": dec(lastday),
        "change_today": dec((price - lastday) / lastday if lastday else 0.0),
    }


def clock_json(now: float, is_open: bool, next_open: float, next_close: float) -> dict[str, object]:
    """GET /v2/clock (trading-api.json components.schemas.Clock), New York offsets."""
    return {
        "timestamp": ts_ny(now),
        "is_open": is_open,
        "next_open": ts_ny(next_open, fraction=False),
        "next_close": ts_ny(next_close, fraction=False),
    }


def calendar_json(s: CalendarSession, settlement: dt.date) -> dict[str, object]:
    """GET /v2/calendar row (trading-api.json components.schemas.Calendar + session_open/close)."""
    return {
        "date": s.date.isoformat(),
        "open": s.open_dt.strftime("%H:%M"),
        "close": s.close_dt.strftime("%H:%M"),
        "session_open": "0400",
        "session_close": "2000",
        "settlement_date": settlement.isoformat(),
    }


def bar_json(
    t: float, o: float, h: float, low: float, c: float, v: int, n: int, vw: float
) -> dict[str, object]:
    """market-data-api.json stock_bar: t RFC3339, o/h/l/c/vw numbers, v/n integers."""
    return {"t": ts_bar(t), "o": o, "h": h, "l": low, "c": c, "v": v, "n": n, "vw": vw}


def bar_text(t: float, o: float, h: float, low: float, c: float, v: int, n: int, vw: float) -> str:
    return json.dumps(bar_json(t, o, h, low, c, v, n, vw))


def msgpack_timestamp(epoch: float) -> msgpack.Timestamp:
    """The msgpack Timestamp ext type alpaca-trade-api's stream._cast expects for `t`."""
    ns = round(epoch * 1e9)
    return msgpack.Timestamp.from_unix_nano(ns)


def bars_text(rows: list[str], symbol: str, token: str | None) -> str:
    """GET /v2/stocks/{symbol}/bars (stock_bars_resp_single) from bar rows already written as JSON."""
    return f'{{"bars": [{",".join(rows)}], "symbol": {json.dumps(symbol)}, "next_page_token": {json.dumps(token)}}}'


def multi_bars_text(page: list[tuple[str, str]], token: str | None) -> str:
    """GET /v2/stocks/bars (stock_bars_resp_multi) from (symbol, bar row JSON) in order."""
    grouped: dict[str, list[str]] = {}
    for sym, r in page:
        grouped.setdefault(sym, []).append(r)
    parts = ", ".join(f"{json.dumps(sym)}: [{','.join(rows)}]" for sym, rows in grouped.items())
    return f'{{"bars": {{{parts}}}, "next_page_token": {json.dumps(token)}}}'


def bar_rows(bars: DayBars) -> list[str]:
    """Each bar as market-data-api.json stock_bar JSON text, built once per day (kept in the day's memo):
    serving bars is then a string join (the simulator answers a bars poll every virtual minute, often
    at 600x)."""
    rows = bars.memo.get("json_rows")
    if rows is None:
        rows = [
            json.dumps({"t": ts_bar(t), "o": o, "h": h, "l": low, "c": c, "v": v, "n": n, "vw": vw})
            for t, o, h, low, c, v, n, vw in zip(
                bars.t.tolist(),
                bars.o.tolist(),
                bars.h.tolist(),
                bars.low.tolist(),
                bars.c.tolist(),
                bars.v.tolist(),
                bars.n.tolist(),
                bars.vw.tolist(),
                strict=True,
            )
        ]
        bars.memo["json_rows"] = rows
    assert isinstance(rows, list)
    return rows


def error_json(e: ApiError) -> dict[str, object]:
    """trading-api.json components.schemas.Error: code, message, and Alpaca's context fields (money as
    decimal strings)."""
    out: dict[str, object] = (
        {"message": e.message} if e.code is None else {"code": e.code, "message": e.message}
    )
    for key, value in e.extra.items():
        out[key] = value if isinstance(value, str) else (dec(value) or "0")
    return out


def cancel_result_json(view: OrderView) -> dict[str, object]:
    """One row of DELETE /v2/orders' 207 answer."""
    return {"id": view.order.id, "status": 200, "body": order_view_json(view)}


def close_result_json(symbol: str, result: OrderView | ApiError) -> dict[str, object]:
    """One row of DELETE /v2/positions' 207 answer: the closing order, or why it was refused."""
    if isinstance(result, ApiError):
        return {"symbol": symbol, "status": result.status, "body": error_json(result)}
    return {"symbol": symbol, "status": 200, "body": order_view_json(result)}


def latest_json(symbol: str, what: str, value: object) -> dict[str, object]:
    """GET /v2/stocks/{symbol}/{bars,trades,quotes}/latest: {"symbol": ..., "bar"|"trade"|"quote": ...}."""
    return {"symbol": symbol, what: value}


def account_json(a: AccountView, now: float, legacy_pdt: bool = False) -> dict[str, object]:
    """trading-api.json components.schemas.Account (example field set, strings for money), without the
    fields Alpaca removed on 2026-07-06 (pattern_day_trader, daytrade_count, daytrading_buying_power:
    changelog 2026-07-06-pdt) unless the world keeps the legacy pattern-day-trader rules."""
    eq, bp, longs, shorts = a.equity, a.buying_power, a.long_value, a.short_value
    day = dt.datetime.fromtimestamp(now, NEW_YORK).date().isoformat()
    out: dict[str, object] = {
        "id": a.id,
        "admin_configurations": {},
        "user_configurations": None,
        "account_number": a.number,
        "status": "ACTIVE",
        "crypto_status": "INACTIVE",
        "currency": "USD",
        "buying_power": dec(round(bp, 2)),
        "regt_buying_power": dec(round(max(0.0, 2 * eq - (longs - shorts)), 2)),
        "options_buying_power": "0",
        "effective_buying_power": dec(round(bp, 2)),
        "non_marginable_buying_power": dec(round(max(0.0, a.cash), 2)),
        "cash": dec(round(a.cash, 2)),
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "pending_transfer_out": "0",
        "portfolio_value": dec(round(eq, 2)),
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": "2024-01-02T14:30:00.000000Z",
        "trade_suspended_by_user": False,
        "multiplier": dec(a.multiplier),
        "shorting_enabled": eq >= MIN_EQUITY_FOR_SHORTS,
        "equity": dec(round(eq, 2)),
        "last_equity": dec(round(a.last_equity, 2)),
        "long_market_value": dec(round(longs, 2)),
        "short_market_value": dec(round(shorts, 2)),
        "position_market_value": dec(round(longs - shorts, 2)),
        "initial_margin": dec(round((longs - shorts) * 0.5, 2)),
        "maintenance_margin": dec(round((longs - shorts) * 0.3, 2)),
        "last_maintenance_margin": "0",
        "sma": dec(round(eq, 2)),
        "balance_asof": day,
        "crypto_tier": 0,
        "options_trading_level": 0,
        "options_approved_level": 0,
        "intraday_adjustments": "0",
        "pending_reg_taf_fees": "0",
    }
    if legacy_pdt:
        out.update(pattern_day_trader=True, daytrade_count=4, daytrading_buying_power=dec(round(bp, 2)))
    return out


ACCOUNT_CONFIGURATIONS: dict[str, object] = {  # trading-api.json components.schemas.AccountConfigurations
    "dtbp_check": "entry",
    "trade_confirm_email": "none",
    "suspend_trade": False,
    "no_shorting": False,
    "fractional_trading": False,
    "max_margin_multiplier": "4",
}


def asset_json(a: Asset) -> dict[str, object]:
    """trading-api.json components.schemas.Assets (JSON key `class`, booleans as booleans)."""
    return {
        "id": a.id,
        "class": "us_equity",
        "exchange": "NASDAQ",
        "symbol": a.symbol,
        "name": a.name,
        "status": "active",
        "tradable": a.tradable,
        "marginable": True,
        "maintenance_margin_requirement": 30,
        "margin_requirement_long": "30",
        "margin_requirement_short": "100",
        "shortable": a.shortable,
        "easy_to_borrow": a.easy_to_borrow,
        "borrow_status": a.borrow_status,
        "fractionable": False,
        "attributes": [],
    }


def trade_json(t: float, price: float, size: int) -> dict[str, object]:
    """market-data-api.json stock_trade: t, x, p, s, c, i, z."""
    return {"t": ts_utc(t), "x": "V", "p": price, "s": size, "c": ["@"], "i": int(t), "z": "C"}


def quote_json(t: str | None, price: float) -> dict[str, object]:
    """market-data-api.json stock_quote: one cent either side of the last trade."""
    return {"t": t, **_quote(price)}


def _quote(price: float) -> dict[str, object]:
    return {
        "bx": "V",
        "bp": round(price - 0.01, 4),
        "bs": 1,
        "ax": "V",
        "ap": round(price + 0.01, 4),
        "as": 1,
        "c": ["R"],
        "z": "C",
    }


def bar_message(
    symbol: str, b: DayBars, i: int, updated: bool = False, preliminary: bool = False
) -> dict[str, object]:
    """A bar of the data stream (docs realtime.md): `b` when it closes, `u` when it is recomputed with
    late trades (the `updatedBars` channel; the same schema). A `preliminary` `b` lacks the late volume."""
    volume, count = int(b.v[i]), int(b.n[i])
    if preliminary:
        volume, count = max(1, volume - late_volume(volume)), max(1, count - 1)
    return {
        "T": "u" if updated else "b",
        "S": symbol,
        "o": float(b.o[i]),
        "h": float(b.h[i]),
        "l": float(b.low[i]),
        "c": float(b.c[i]),
        "v": volume,
        "t": float(b.t[i]),
        "n": count,
        "vw": float(b.vw[i]),
    }


def stream_messages(item: TapePrint | BarPrint, revised: bool = False) -> list[dict[str, object]]:
    """The data stream's messages for a tape trade (a `t` and a `q`) or a closed bar (a `b`, or a `u`),
    docs realtime.md. `revised`: the bar will be recomputed (its `b` is preliminary). `t` stays epoch
    seconds here: each connection's codec writes it (stream_time)."""
    if isinstance(item, BarPrint):
        return [bar_message(item.symbol, item.day, item.index, item.updated, revised and not item.updated)]
    sym, t, p = item.symbol, item.t, item.price
    return [
        {"T": "t", "S": sym, "i": int(t), "x": "V", "p": p, "s": item.size, "c": ["@"], "z": "C", "t": t},
        {"T": "q", "S": sym, **_quote(p), "t": t},
    ]


# -- the websockets' own messages ----------------------------------------------------------------
def trading_message(stream: str, data: dict[str, object]) -> dict[str, object]:
    """A trade_updates websocket frame: {"stream": "authorization"|"listening"|"trade_updates", "data"}."""
    return {"stream": stream, "data": data}


def authorization_json(authorized: bool, action: str) -> dict[str, object]:
    return trading_message(
        "authorization", {"status": "authorized" if authorized else "unauthorized", "action": action}
    )


def listening_json(listening: bool) -> dict[str, object]:
    return trading_message("listening", {"streams": ["trade_updates"] if listening else []})


def data_success(msg: str) -> list[dict[str, object]]:
    """A market-data websocket control frame: [{"T": "success", "msg": ...}]."""
    return [{"T": "success", "msg": msg}]


def data_error(code: int, msg: str) -> list[dict[str, object]]:
    """[{"T": "error", "code": 400|401|402|403, "msg": ...}], Alpaca's market-data stream errors."""
    return [{"T": "error", "code": code, "msg": msg}]


def subscription_json(subs: dict[str, set[str]], channels: tuple[str, ...]) -> list[dict[str, object]]:
    """[{"T": "subscription", "trades": [...], "quotes": [...], "bars": [...]}], symbols sorted."""
    msg: dict[str, object] = {"T": "subscription"}
    for c in channels:
        msg[c] = sorted(subs[c])
    return [msg]


def stream_time(msg: dict[str, object], msgpack_time: bool) -> dict[str, object]:
    """A data-stream message with its epoch `t` written for the connection's codec: a msgpack
    Timestamp, or RFC 3339 text (whole seconds for bars)."""
    t = msg.get("t")
    if not isinstance(t, float):
        return msg
    out = dict(msg)
    out["t"] = (
        msgpack_timestamp(t) if msgpack_time else (ts_bar(t) if msg.get("T") in ("b", "u") else ts_utc(t))
    )
    return out
