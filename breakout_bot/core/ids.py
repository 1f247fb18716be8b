"""Our orders: deterministic client order ids, and which part of a trade an order is."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from functools import lru_cache

from .model import NEW_YORK, STOP_TYPES, Leg, OrderSnapshot, OrderType

CLIENT_ORDER_PREFIX = "bb"
_CID_HEAD = f"{CLIENT_ORDER_PREFIX}-"


def client_order_id(symbol: str, session_date: date, entry_number: int) -> str:
    """Deterministic per (symbol, session, entry n): a restart recomputes it, so it never doubles an order."""
    return f"{CLIENT_ORDER_PREFIX}-{symbol}-{_yyyymmdd(session_date)}-{entry_number}"


@lru_cache(maxsize=16)  # a day's entries share it
def _yyyymmdd(day: date) -> str:
    """`f"{day:%Y%m%d}"` without strftime (several times slower; one per entry of a backtest)."""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def parse_client_order_id(cid: str) -> tuple[str, date, int] | None:
    """(symbol, session date, entry number) of one of our entries, or None for any other order."""
    if not cid.startswith(_CID_HEAD):  # most orders are not ours (bracket legs): answer cheaply
        return None
    parts = cid.split("-")
    if len(parts) < 4 or parts[0] != CLIENT_ORDER_PREFIX:
        return None
    try:
        number = int(parts[-1])
        day = datetime.strptime(parts[-2], "%Y%m%d").date()
    except ValueError:
        return None
    return "-".join(parts[1:-2]), day, number


def entry_number(cid: str) -> int:
    """The n of one of our entries (0 for any other order)."""
    parsed = parse_client_order_id(cid)
    return parsed[2] if parsed is not None else 0


def is_entry_of(cid: str, symbol: str, day: date) -> bool:
    """Is `cid` one of our entries for `symbol` on session `day`?"""
    parsed = parse_client_order_id(cid)
    return parsed is not None and parsed[0] == symbol and parsed[1] == day


def entries_today(orders: Iterable[OrderSnapshot], symbol: str, day: date) -> tuple[int, int]:
    """From the broker's orders of the day: (the highest entry number we used for `symbol` on session
    `day`, how many of those entries filled), the counts a Reconciled carries. The next entry takes the
    number after the first, so a restart never sends one twice."""
    numbers = [
        (parsed[2], o.filled_qty > 0)
        for o in orders
        if (parsed := parse_client_order_id(o.client_order_id)) is not None
        and parsed[0] == symbol
        and parsed[1] == day
    ]
    return max((n for n, _ in numbers), default=0), sum(1 for _, filled in numbers if filled)


FLATTEN_MARK = "-flat-"


def flatten_client_order_id(symbol: str, when: datetime) -> str:
    """The client order id a take-profit gets when the flatten replaces it by a marketable limit
    (`bb-AAPL-20240304-flat-155502`): never taken for an entry, unique per second."""
    ny = when.astimezone(NEW_YORK)
    return f"{CLIENT_ORDER_PREFIX}-{symbol}-{_yyyymmdd(ny.date())}{FLATTEN_MARK}{ny:%H%M%S}"


def is_flatten(cid: str) -> bool:
    return cid.startswith(_CID_HEAD) and FLATTEN_MARK in cid


def order_leg(order: OrderSnapshot, entry_cid: str | None) -> Leg:
    """Which part of our trade an order is: entry, take_profit, stop_loss or flatten."""
    if entry_cid is not None and order.client_order_id == entry_cid:
        return "entry"
    if is_flatten(order.client_order_id):
        return "flatten"
    if parse_client_order_id(order.client_order_id) is not None:
        return "entry"
    kind = order.type
    if kind in STOP_TYPES:
        return "stop_loss"
    if kind is OrderType.LIMIT:
        return "take_profit"
    if kind is OrderType.MARKET:
        return "flatten"
    return "unknown"
