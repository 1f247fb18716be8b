"""The deterministic tick tape derived from one-minute bars (documented in docs/simulator.md).

A bar starting at T yields five trades: the open at T+1s and again at T+10s; then, if close >= open,
low at T+25s and high at T+40s, else high at T+25s and low at T+40s; close at T+59s. The trade at T+1s
is the price moving on after the previous bar closed: an order sent a second or two after a bar
closed (the bot's decision) is checked against it (Alpaca checks bracket legs against the price at
submission: 422 with `base_price`), not against the bar's close. The open trades again at T+10s, so an
order the bot sends within 10 virtual seconds of seeing a bar fills at the next bar's open (the
backtester's rule), even at 600x speed. Between two ticks of the same bar the price is taken to move
continuously (so a level crossed between them is hit exactly); between bars there is a gap (next open
vs previous close). The bar itself becomes visible at T+60s; a bar recomputed with late trades is
published again at T+90s (`u` messages; Alpaca Learn, "stock minute bars").

`interval` (benchmarks): extra trades every `interval` seconds between those anchors, on the straight
line between them (the continuous price the matcher already assumes), rounded to the tick.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import NamedTuple

from ..core.ticks import decimals_allowed
from ..market.calendar import CalendarSession
from ..market.days import DayBars

TICK_OFFSETS = (1, 10, 25, 40, 59)
BAR_CLOSE_OFFSET = 60
BAR_UPDATE_OFFSET = 90  # "the bar is then recalculated after 30 seconds"

# Event kinds, in their tie-break order at the same instant: trades, bar closes, bar updates, the bell.
TICK = 0
BAR = 1
BAR_UPDATE = 2
SESSION_CLOSE = 3


class Event(NamedTuple):
    t: float
    kind: int
    symbol: str
    bar: int  # index into the symbol's DayBars (-1 for the session close)
    leg: int  # 0..4 anchor tick number inside the bar; -1 for an interpolated tick (price below)
    price: float = 0.0  # an interpolated tick's price


def tick_price(bars: DayBars, i: int, leg: int) -> float:
    o, c = float(bars.o[i]), float(bars.c[i])
    if leg <= 1:
        return o
    if leg == 4:
        return c
    up = c >= o  # rising bar: low first, then high
    want_low = (leg == 2) == up
    return float(bars.low[i]) if want_low else float(bars.h[i])


def tick_size(bars: DayBars, i: int) -> int:
    return max(1, int(bars.v[i]) // len(TICK_OFFSETS))


def _round_to_tick(price: float) -> float:
    return round(price, decimals_allowed(Decimal(repr(price))))


def day_events(
    session: CalendarSession,
    days: dict[str, DayBars],
    revised: Callable[[str, float], bool] | None = None,
    interval: float | None = None,
) -> list[Event]:
    """All tape events of one session, sorted by (time, kind, symbol): a total, deterministic order.
    `revised(symbol, bar_start)` says which bars get a BAR_UPDATE 30 s after they close."""
    events: list[Event] = []
    for sym in sorted(days):
        bars = days[sym]
        for i, t0 in enumerate(bars.t.tolist()):
            anchors = [(off, tick_price(bars, i, leg)) for leg, off in enumerate(TICK_OFFSETS)]
            for leg, (off, _) in enumerate(anchors):
                events.append(Event(float(t0 + off), TICK, sym, i, leg))
            if interval:
                for (a_off, a_p), (b_off, b_p) in itertools.pairwise(anchors):
                    k = 1
                    while a_off + k * interval < b_off - 1e-9:
                        at = a_off + k * interval
                        p = _round_to_tick(a_p + (b_p - a_p) * (at - a_off) / (b_off - a_off))
                        events.append(Event(float(t0 + at), TICK, sym, i, -1, p))
                        k += 1
            events.append(Event(float(t0 + BAR_CLOSE_OFFSET), BAR, sym, i, -1))
            if revised is not None and revised(sym, float(t0)):
                events.append(Event(float(t0 + BAR_UPDATE_OFFSET), BAR_UPDATE, sym, i, -1))
    events.append(Event(session.close, SESSION_CLOSE, "", -1, -1))
    events.sort(key=lambda e: (e.t, e.kind, e.symbol))
    return events
