"""Alpaca's JSON as the core's types, and back (pure functions).

The wire names live here: Alpaca's trade_updates events, order statuses and order types become the
core's OrderEvent, OrderStatus and OrderType (sources: trading-api.json OrderStatus; the trade_updates
event list, docs api-references/trading-api/streaming.md). Anything unknown is OTHER / ENDED.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from ...core.events import OrderUpdate, SubmitBracket
from ...core.model import NEW_YORK, Bar, OrderEvent, OrderSnapshot, OrderStatus, OrderType, Session, Side
from ..base import AccountInfo, AssetInfo, FillActivity, MarketClock
from ..timestamps import parse_time

UTC = timezone.utc

EVENTS: dict[str, OrderEvent] = {
    "new": OrderEvent.ACCEPTED,
    "accepted": OrderEvent.ACCEPTED,
    "pending_new": OrderEvent.ACCEPTED,
    "held": OrderEvent.ACCEPTED,
    "replaced": OrderEvent.ACCEPTED,
    "partial_fill": OrderEvent.PARTIAL_FILL,
    "fill": OrderEvent.FILL,
    "canceled": OrderEvent.CANCELED,
    "stopped": OrderEvent.CANCELED,
    "suspended": OrderEvent.CANCELED,
    "expired": OrderEvent.EXPIRED,
    "done_for_day": OrderEvent.EXPIRED,
    "rejected": OrderEvent.REJECTED,
}
STATUSES: dict[str, OrderStatus] = {
    "new": OrderStatus.NEW,
    "accepted": OrderStatus.NEW,
    "pending_new": OrderStatus.NEW,
    "accepted_for_bidding": OrderStatus.NEW,
    "calculated": OrderStatus.NEW,
    "pending_replace": OrderStatus.NEW,
    "held": OrderStatus.HELD,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "pending_cancel": OrderStatus.PENDING_CANCEL,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "replaced": OrderStatus.REPLACED,
}
TYPES: dict[str, OrderType] = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP_LIMIT,
    "trailing_stop": OrderType.TRAILING_STOP,
}


def to_decimal(value: object) -> Decimal:
    """A decimal-as-string (or number) from Alpaca as a Decimal; never through float."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def opt_decimal(value: object) -> Decimal | None:
    return None if value in (None, "") else to_decimal(value)


def side_of(value: object) -> Side:
    text = str(value or "").lower()
    if text in ("buy", "buy_to_cover"):
        return "buy"
    if text in ("sell", "sell_short"):
        return "sell"
    raise ValueError(f"unknown order side {value!r}")


def order_from_dict(d: Mapping[str, Any]) -> OrderSnapshot:
    """An Alpaca Order object (REST or trade_updates) as an OrderSnapshot, legs included."""
    legs = d.get("legs") or ()
    return OrderSnapshot(
        id=str(d["id"]),
        client_order_id=str(d.get("client_order_id") or ""),
        symbol=str(d.get("symbol") or ""),
        side=side_of(d.get("side")),
        type=TYPES.get(str(d.get("type") or d.get("order_type") or ""), OrderType.OTHER),
        status=STATUSES.get(str(d.get("status") or ""), OrderStatus.ENDED),
        qty=opt_decimal(d.get("qty")) or Decimal(0),
        filled_qty=opt_decimal(d.get("filled_qty")) or Decimal(0),
        filled_avg_price=opt_decimal(d.get("filled_avg_price")),
        stop_price=opt_decimal(d.get("stop_price")),
        limit_price=opt_decimal(d.get("limit_price")),
        order_class=str(d.get("order_class") or ""),
        legs=tuple(order_from_dict(leg) for leg in legs),
    )


def trade_update_from_dict(data: Mapping[str, Any], received_at: datetime | None = None) -> OrderUpdate:
    """The `data` of a trade_updates message as an OrderUpdate: the execution's own qty/price."""
    order = data["order"]
    ts = data.get("timestamp") or order.get("updated_at")
    return OrderUpdate(
        event=EVENTS.get(str(data["event"]), OrderEvent.OTHER),
        order=order_from_dict(order),
        timestamp=parse_time(ts) if ts else (received_at or datetime.now(UTC)),
        execution_id=str(data["execution_id"]) if data.get("execution_id") else None,
        qty=opt_decimal(data.get("qty")),
        price=opt_decimal(data.get("price")),
    )


def bar_from_dict(d: Mapping[str, Any]) -> Bar:
    """A v2 bar (REST `bars` item or stream "b" message) as a Bar."""
    return Bar(
        t=parse_time(d["t"]),
        open=float(d["o"]),
        high=float(d["h"]),
        low=float(d["l"]),
        close=float(d["c"]),
        volume=float(d.get("v") or 0),
    )


def session_from_dict(d: Mapping[str, Any]) -> Session:
    """A /v2/calendar row ({"date","open","close"} in New York local time) as a Session."""
    day = date.fromisoformat(str(d["date"]))

    def at(hhmm: str) -> datetime:
        text = hhmm.strip()
        if ":" not in text and len(text) == 4:
            text = f"{text[:2]}:{text[2:]}"
        hh, mm = text.split(":")[:2]
        return datetime(day.year, day.month, day.day, int(hh), int(mm), tzinfo=NEW_YORK)

    return Session(date=day, open=at(str(d["open"])), close=at(str(d["close"])))


def clock_from_dict(d: Mapping[str, Any]) -> MarketClock:
    return MarketClock(
        timestamp=parse_time(d["timestamp"]),
        is_open=bool(d["is_open"]),
        next_open=parse_time(d["next_open"]),
        next_close=parse_time(d["next_close"]),
    )


def account_from_dict(d: Mapping[str, Any]) -> AccountInfo:
    return AccountInfo(
        status=str(d.get("status") or ""),
        equity=to_decimal(d.get("equity") or 0),
        cash=to_decimal(d.get("cash") or 0),
        buying_power=to_decimal(d.get("buying_power") or 0),
        trading_blocked=bool(d.get("trading_blocked") or d.get("account_blocked")),
        shorting_enabled=bool(d.get("shorting_enabled")),
        account_number=str(d.get("account_number") or ""),
    )


def asset_from_dict(d: Mapping[str, Any]) -> AssetInfo:
    return AssetInfo(
        symbol=str(d["symbol"]),
        status=str(d.get("status") or ""),
        tradable=bool(d.get("tradable")),
        shortable=bool(d.get("shortable")),
        easy_to_borrow=bool(d.get("easy_to_borrow")),
        fractionable=bool(d.get("fractionable")),
    )


def fill_from_dict(d: Mapping[str, Any]) -> FillActivity:
    """A FILL account activity. Its id is "<transaction time>::<execution id>"."""
    aid = str(d["id"])
    return FillActivity(
        id=aid,
        execution_id=aid.split("::", 1)[1] if "::" in aid else aid,
        order_id=str(d.get("order_id") or ""),
        symbol=str(d.get("symbol") or ""),
        side=side_of(d.get("side")),
        qty=to_decimal(d["qty"]),
        price=to_decimal(d["price"]),
        cum_qty=to_decimal(d.get("cum_qty") or d["qty"]),
        leaves_qty=to_decimal(d.get("leaves_qty") or 0),
        transaction_time=parse_time(d["transaction_time"]),
        type=str(d.get("type") or "fill"),
    )


def position_qty_from_dict(d: Mapping[str, Any]) -> Decimal:
    """A Position's signed quantity (short < 0, whatever sign Alpaca's qty carries)."""
    qty = to_decimal(d["qty"])
    if str(d.get("side", "")).lower() == "short" and qty > 0:
        qty = -qty
    return qty


def bracket_body(order: SubmitBracket) -> dict[str, Any]:
    """POST /v2/orders body for the bracket entry (prices and qty as strings, like Alpaca's own)."""
    return {
        "symbol": order.symbol,
        "qty": str(order.qty),
        "side": order.side,
        "type": "market",
        "time_in_force": "day",
        "order_class": "bracket",
        "take_profit": {"limit_price": str(order.take_profit_price)},
        "stop_loss": {"stop_price": str(order.stop_price)},
        "client_order_id": order.client_order_id,
    }


def rfc3339(ts: datetime) -> str:
    if ts.tzinfo is None:
        raise ValueError("timestamps sent to Alpaca must be timezone-aware")
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iter_orders(orders: Iterable[OrderSnapshot]) -> Iterable[OrderSnapshot]:
    """Every order and, after each, its legs (depth first)."""
    for o in orders:
        yield o
        yield from iter_orders(o.legs)
