"""How orders fill against prices: one set of rules for the simulator's tape and the backtest's bars.

* A market order fills at the first trade it can take part in.
* A limit or stop level crossed between two trades of one continuous stretch (inside a bar) fills at
  the level. A level already passed when the order could first trade, or jumped by a gap (the next
  bar's open beyond it), fills at that trade's price: better for a limit, worse for a stop.
* When both legs of a bracket are touched inside one bar, the stop is taken first (conservative: the
  order of the bar's extremes is unknown to a backtest).

The simulator applies these per trade of its tick tape (sim/matching.py); the backtest's broker per
bar, where the bar's open is the first trade after a gap (backtest/broker.py). The fast kernel
(backtest/kernel.py) mirrors them; its parity tests hold it to the event path.
"""

from __future__ import annotations


def rising(side: str, is_stop: bool) -> bool:
    """Whether an order triggers on prices reaching its level from below: a buy stop, or a sell limit."""
    return (side == "buy") == is_stop


def touches(level: float, price: float, up: bool) -> bool:
    """A trade at `price` reaches `level` (from below when `up`, from above otherwise)."""
    return price >= level if up else price <= level


def fill_price_at(level: float, price: float, prev: float | None, up: bool) -> float | None:
    """The fill price when a trade at `price` reaches `level`, or None when it does not. `prev` is the
    trade before it in the same continuous stretch (None after a gap, or for the first trade the order
    sees): crossed between the two, the order fills at its level; otherwise at the trade's price."""
    if not touches(level, price, up):
        return None
    return level if prev is not None and not touches(level, prev, up) else price
