"""The deterministic tick tape derived from one-minute bars (documented in docs/simulator.md).

A bar starting at T yields four trades: open at T+10s; then, if close >= open, low at T+25s and high
at T+40s, else high at T+25s and low at T+40s; close at T+59s. The open trades 10 s after the
previous bar became visible, so an order the bot sends within 10 virtual seconds of seeing a bar
fills at the next bar's open (the backtester's rule), even at 600x speed. Between two ticks of the same bar
the price is taken to move continuously (so a level crossed between them is hit exactly); between
bars there is a gap (next open vs previous close). The bar itself becomes visible at T+60s.
"""

from __future__ import annotations

from typing import NamedTuple

from ..market.calendar import CalendarSession
from ..market.days import DayBars

TICK_OFFSETS = (10, 25, 40, 59)
BAR_CLOSE_OFFSET = 60

# Event kinds, in their tie-break order at the same instant: trades, then bar closes, then the bell.
TICK = 0
BAR = 1
SESSION_CLOSE = 2


class Event(NamedTuple):
    t: float
    kind: int
    symbol: str
    bar: int  # index into the symbol's DayBars (-1 for the session close)
    leg: int  # 0..3 tick number inside the bar (-1 otherwise)


def tick_price(bars: DayBars, i: int, leg: int) -> float:
    o, c = float(bars.o[i]), float(bars.c[i])
    if leg == 0:
        return o
    if leg == 3:
        return c
    up = c >= o  # rising bar: low first, then high
    first_low = up
    want_low = (leg == 1) == first_low
    return float(bars.low[i]) if want_low else float(bars.h[i])


def tick_size(bars: DayBars, i: int) -> int:
    return max(1, int(bars.v[i]) // 4)


def day_events(session: CalendarSession, days: dict[str, DayBars]) -> list[Event]:
    """All tape events of one session, sorted by (time, kind, symbol): a total, deterministic order."""
    events: list[Event] = []
    for sym in sorted(days):
        bars = days[sym]
        for i, t0 in enumerate(bars.t.tolist()):
            for leg, off in enumerate(TICK_OFFSETS):
                events.append(Event(float(t0 + off), TICK, sym, i, leg))
            events.append(Event(float(t0 + BAR_CLOSE_OFFSET), BAR, sym, i, -1))
    events.append(Event(session.close, SESSION_CLOSE, "", -1, -1))
    events.sort(key=lambda e: (e.t, e.kind, e.symbol))
    return events
