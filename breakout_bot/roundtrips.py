"""Fills → round-trip trades (flat → position → flat), with realized P&L. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")


@dataclass(frozen=True, slots=True)
class FillLike:
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    timestamp: datetime


@dataclass(slots=True)
class RoundTrip:
    symbol: str
    direction: str  # long | short
    opened: datetime
    closed: datetime | None = None
    qty: Decimal = Decimal(0)  # largest absolute position held
    entry_value: Decimal = Decimal(0)
    entry_qty: Decimal = Decimal(0)
    exit_value: Decimal = Decimal(0)
    exit_qty: Decimal = Decimal(0)
    realized: Decimal = Decimal(0)
    fills: int = 0
    legs: list[str] = field(default_factory=list)

    @property
    def entry_price(self) -> Decimal:
        return self.entry_value / self.entry_qty if self.entry_qty else Decimal(0)

    @property
    def exit_price(self) -> Decimal | None:
        return self.exit_value / self.exit_qty if self.exit_qty else None

    @property
    def day(self) -> date:
        return self.opened.astimezone(NEW_YORK).date()


def round_trips(fills: Iterable[FillLike]) -> list[RoundTrip]:
    """Average-cost round trips per symbol, in time order; an open position ends as an unclosed trip."""
    trips: list[RoundTrip] = []
    open_trips: dict[str, RoundTrip] = {}
    positions: dict[str, Decimal] = {}
    for fill in sorted(fills, key=lambda f: f.timestamp):
        position = positions.get(fill.symbol, Decimal(0))
        signed = fill.qty if fill.side == "buy" else -fill.qty
        remaining = signed
        while remaining != 0:
            trip = open_trips.get(fill.symbol)
            if trip is None or position == 0:
                trip = RoundTrip(fill.symbol, "long" if remaining > 0 else "short", fill.timestamp)
                open_trips[fill.symbol] = trip
                trips.append(trip)
            trip.fills += 1
            if position == 0 or (position > 0) == (remaining > 0):
                trip.entry_value += abs(remaining) * fill.price
                trip.entry_qty += abs(remaining)
                position += remaining
                trip.qty = max(trip.qty, abs(position))
                remaining = Decimal(0)
            else:
                closing = min(abs(position), abs(remaining))
                direction = 1 if position > 0 else -1
                trip.realized += (fill.price - trip.entry_price) * closing * direction
                trip.exit_value += closing * fill.price
                trip.exit_qty += closing
                position += closing if position < 0 else -closing
                remaining += closing if remaining < 0 else -closing
                if position == 0:
                    trip.closed = fill.timestamp
                    del open_trips[fill.symbol]
        positions[fill.symbol] = position
    return trips
