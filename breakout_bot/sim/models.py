"""The simulated broker's records: orders, positions and executions (mutable, the exchange's state), and
what it publishes (immutable copies, for the wire)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..market.days import DayBars

# Statuses after which an order never changes again (trading-api.json components.schemas.OrderStatus).
TERMINAL = frozenset({"filled", "canceled", "expired", "replaced", "rejected", "stopped", "suspended"})
# Statuses in which an order may match a tick. Held legs wait for their parent; a bracket's stop-loss
# stays `held` after its parent filled (Alpaca support, forum t/3697) but is `armed`: it may trigger.
# A cancel is a request (trading-api.json DELETE /v2/orders/{id}): until it is processed the order may
# still fill, in `pending_cancel` or still `new`.
WORKING = frozenset({"new", "partially_filled", "accepted", "pending_new", "pending_cancel"})


@dataclass
class Order:
    id: str
    client_order_id: str
    symbol: str
    asset_id: str
    side: str  # buy | sell
    type: str  # market | limit | stop | stop_limit
    time_in_force: str
    qty: int
    limit_price: float | None
    stop_price: float | None
    order_class: str  # "" (simple) | bracket | oco | oto
    status: str
    created_at: float
    seq: int  # submission order: the matching priority and the tie-breaker everywhere
    active_at: float  # submitted_at + latency: only ticks strictly after this can fill it
    position_intent: str = ""
    extended_hours: bool = False
    updated_at: float = 0.0
    submitted_at: float = 0.0
    filled_at: float | None = None
    expired_at: float | None = None
    canceled_at: float | None = None
    failed_at: float | None = None
    replaced_at: float | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    filled_qty: int = 0
    filled_notional: float = 0.0
    legs: list[str] = field(default_factory=list)  # child order ids (bracket/oto/oco)
    parent_id: str | None = None
    triggered: bool = False  # a stop_limit whose stop was hit: it now rests as a limit
    armed: bool = False  # a held stop-loss leg whose parent filled: it triggers, then goes `new`
    cancel_at: float | None = None  # a requested cancel, processed at this virtual time
    pieces: list[int] | None = None  # planned partial-fill sizes, consumed one per tick

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL

    @property
    def can_match(self) -> bool:
        """May this order trade against a tick (when it has arrived)?"""
        return self.status in WORKING or (self.armed and self.status == "held")

    @property
    def remaining(self) -> int:
        return self.qty - self.filled_qty

    @property
    def avg_price(self) -> float | None:
        return self.filled_notional / self.filled_qty if self.filled_qty else None


@dataclass
class Position:
    symbol: str
    asset_id: str
    qty: int = 0  # signed: > 0 long, < 0 short
    avg_entry_price: float = 0.0
    realized_pl: float = 0.0


@dataclass(frozen=True)
class Execution:
    """One fill (partial or full) of one order."""

    execution_id: str
    order_id: str
    symbol: str
    side: str
    qty: int
    price: float
    time: float
    cum_qty: int
    leaves_qty: int
    order_status: str
    kind: str  # fill | partial_fill


@dataclass(frozen=True)
class OrderView:
    """An order with the legs shown nested under it (a bracket's or OCO's parent), as of one moment."""

    order: Order
    legs: tuple[Order, ...] = ()


@dataclass(frozen=True)
class TradeEvent:
    """One trade_updates event, as it happened: the order (and its legs) copied at that moment."""

    event: str  # Alpaca's event name: pending_new, accepted, new, fill, partial_fill, pending_cancel, ...
    order: Order
    legs: tuple[Order, ...]  # nested under the order in the message (a bracket's parent only)
    t: float
    execution: Execution | None
    position_qty: int
    event_id: str | None = None  # the execution_id of an event that is not a fill (None: not sent)


@dataclass(frozen=True)
class TapePrint:
    """One trade of the tape (the data stream also quotes around it)."""

    symbol: str
    t: float
    price: float
    size: int


@dataclass(frozen=True)
class BarPrint:
    """A bar that just closed: bar `index` of the symbol's day."""

    symbol: str
    day: DayBars
    index: int
    updated: bool = False  # a `u` message: the bar recomputed 30 s after it closed (late trades)


Published = TradeEvent | TapePrint | BarPrint  # what the websockets send, in the exchange's order
