"""The trading core's data: bars, boxes, sessions, orders and fills, and the vocabularies adapters map to.

Nothing here knows a broker's wire names. An adapter turns its broker's order events, statuses and
types into `OrderEvent`, `OrderStatus` and `OrderType` (broker/alpaca/convert.py does it for Alpaca),
and the machine reasons only in these terms.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from .valuetype import IdentityEnum, value_type

# The exchange's zone: sessions, client order ids and the log's clock times are New York time.
NEW_YORK = ZoneInfo("America/New_York")

Side = Literal["buy", "sell"]
# Which part of a trade an order (or a fill) is; the journal records it.
Leg = Literal["entry", "take_profit", "stop_loss", "flatten", "unknown"]

BAR_LENGTH = timedelta(minutes=1)


class OrderEvent(IdentityEnum):
    """What happened to an order, in the machine's terms."""

    ACCEPTED = "accepted"  # the broker has it and it is working (or waiting to work)
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"  # the order is completely filled
    CANCELED = "canceled"  # ended without (further) fills ...
    EXPIRED = "expired"  # ... at the end of its time in force
    REJECTED = "rejected"  # ... refused by the broker after it was submitted
    OTHER = "other"  # nothing the machine acts on (a pending cancel or replace, a correction, ...)


FILL_EVENTS = frozenset({OrderEvent.FILL, OrderEvent.PARTIAL_FILL})  # the events that carry an execution


class OrderStatus(IdentityEnum):
    NEW = "new"  # accepted and working
    HELD = "held"  # a bracket leg waiting for its parent (it protects the position once that fills)
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"  # a cancel was requested; the order may still fill
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    REPLACED = "replaced"
    ENDED = "ended"  # no longer working for another reason


OPEN_STATUSES = frozenset(
    {OrderStatus.NEW, OrderStatus.HELD, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_CANCEL}
)
# An order that ended like this never filled more, so a close order that did is worth sending again.
DEAD_STATUSES = frozenset({OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.EXPIRED})


class OrderType(IdentityEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"
    OTHER = "other"


STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP})


@value_type
class Bar:
    """One closed one-minute bar. `t` is the bar's start (tz-aware); it closes at t + 1 minute."""

    t: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0

    @property
    def end(self) -> datetime:
        return self.t + BAR_LENGTH


@value_type
class Box:
    """The range the search watches: frozen while searching, recomputed at each new search."""

    high: float
    low: float
    range: float  # max(high - low, floor): the bracket's distance
    last_close: float
    floored: bool  # True when the 0.3 % floor widened the range
    start: datetime  # first bar of the box
    end: datetime  # end (close time) of its last bar


@value_type
class Bracket:
    side: Side
    stop_price: Decimal
    take_profit_price: Decimal


@value_type
class Session:
    date: date
    open: datetime
    close: datetime


@value_type
class OrderSnapshot:
    """What the machine needs of a broker order (adapter-neutral)."""

    id: str
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    status: OrderStatus
    qty: Decimal
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None
    order_class: str = ""  # as the broker reports it (shown, never reasoned on)
    legs: tuple[OrderSnapshot, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@value_type
class Fill:
    """One execution, as recorded in past_trades.json (keyed by execution id)."""

    execution_id: str
    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    timestamp: datetime
    leg: Leg
    cum_qty: Decimal | None = None  # the order's filled qty after this execution: a source-independent key
