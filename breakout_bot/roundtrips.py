"""Fills → round-trip trades (flat → position → flat), with realized P&L (average cost, by core/positions.py). Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from .core.model import NEW_YORK
from .core.positions import apply_fill


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
    holding_cost: Decimal = Decimal(0)  # average cost of the shares still held (average-cost accounting)
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
            opening = position == 0 or (position > 0) == (remaining > 0)
            # A fill through zero closes this trip with one part and opens the next with the rest.
            part = remaining if opening else min(abs(position), abs(remaining)) * (1 if remaining > 0 else -1)
            position, average, realized = apply_fill(
                position, trip.holding_cost if position else None, part, fill.price
            )
            remaining -= part
            if opening:
                trip.entry_value += abs(part) * fill.price
                trip.entry_qty += abs(part)
                trip.holding_cost = average if average is not None else trip.holding_cost
                trip.qty = max(trip.qty, abs(position))
                continue
            # Against the cost of the shares held (not of every entry so far: shares added after a
            # partial exit would shift it, and a day that ends flat would not realize its cash flow).
            trip.realized += realized if realized is not None else Decimal(0)
            trip.exit_value += abs(part) * fill.price
            trip.exit_qty += abs(part)
            if position == 0:
                trip.closed = fill.timestamp
                del open_trips[fill.symbol]
        positions[fill.symbol] = position
    return trips


def todays_realized(fills: Iterable[FillLike], position_now: Decimal) -> tuple[Decimal, Decimal | None]:
    """One symbol's realized P&L from today's fills, and the average entry price of the position still
    open (None when flat or unknown): what a restarted bot must know for its daily loss limit.

    A position held from before today (`position_now` minus today's net fills) entered at a price
    that is not in today's fills: its P&L is left out, and its entry price stays unknown."""
    ordered = sorted(fills, key=lambda f: f.timestamp)
    net = sum((f.qty if f.side == "buy" else -f.qty for f in ordered), Decimal(0))
    carried = position_now - net
    if carried and ordered:
        seed = FillLike(
            ordered[0].symbol,
            "buy" if carried > 0 else "sell",
            abs(carried),
            ordered[0].price,  # unknown; the trip it opens is dropped below
            ordered[0].timestamp - timedelta(microseconds=1),
        )
        trips = round_trips([seed, *ordered])[1:]  # the carried position's trip is not today's
    else:
        trips = round_trips(ordered)
    realized = sum((trip.realized for trip in trips), Decimal(0))
    open_trip = next((trip for trip in trips if trip.closed is None), None)
    average = open_trip.holding_cost if open_trip is not None and position_now else None
    return realized, average
