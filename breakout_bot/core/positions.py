"""Average-cost position bookkeeping: one home for position, average entry and realized P&L.

The machine (Decimal quantities), the round trips of the journal (Decimal) and the simulator's account
(float) all keep their positions with `apply_fill`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypeVar

N = TypeVar("N", Decimal, float)


def apply_fill(position: N, average: N | None, signed_qty: N, price: N) -> tuple[N, N | None, N | None]:
    """A position after one fill of `signed_qty` (bought > 0, sold < 0) at `price`:
    (position, average entry price of what is held (None when flat), P&L this fill realized).

    Opening or adding averages the entry; reducing realizes (price - average) per share closed in the
    position's direction (None when nothing closed, or the average is unknown); a fill through zero
    opens what is left at `price`."""
    new_position = position + signed_qty
    if position == 0 or (position > 0) == (signed_qty > 0):
        qty = abs(signed_qty)
        if average is None or position == 0:
            return new_position, price, None
        held = abs(position)
        return new_position, (average * held + price * qty) / (held + qty), None
    realized: N | None = None
    if average is not None:
        closed = min(abs(position), abs(signed_qty))
        realized = (price - average) * closed * (1 if position > 0 else -1)
    if abs(signed_qty) > abs(position):  # through zero: the rest is a new position
        return new_position, price, realized
    return new_position, (None if new_position == 0 else average), realized
