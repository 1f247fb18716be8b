"""What each market-data feed shows of the tape: `sip` is every bar; `iex` is thinner.

Alpaca's free feed is IEX alone (~2 % of the volume): "the bar is only emitted if none of its fields
(open, high, low, close, volume) are 0. So if there are no trades in the bar's interval ... then no bar
is generated" (Market Data FAQ); "No trades - no bar" (Alpaca support, forum t/8996). Its prices differ
from the consolidated ones in the last cents (FAQ example: AAPL 2023-09-29). So `iex_bars` drops a
seeded share of the minutes, nudges the remaining prices by a cent now and then (keeping each bar's
OHLC consistent) and scales volume and trade counts to 2 %. Seeded by (seed, symbol, session): the same
world serves the same IEX bars.

Updated bars: "Bars are calculated, and available, 1 second after the close of each minute ... the bar
is then recalculated after 30 seconds ... and will include any trades received after the initial
calculation" (Alpaca Learn, "stock minute bars", quoted in alpaca-java #166). `is_revised` picks the
bars that late trades change (seeded); their first (`b`) version lacks the late volume.
"""

from __future__ import annotations

import random

import numpy as np

from ..market.days import DayBars

IEX_VOLUME_SHARE = 0.02
NUDGE_PROBABILITY = 0.2  # per price of a kept bar
CENT = 0.01


def iex_bars(bars: DayBars, seed: int, missing_pct: float) -> DayBars:
    """The IEX view of one symbol's session (kept in the day's memo)."""
    if not len(bars):
        return bars
    key = f"iex/{seed}/{missing_pct}"
    cached = bars.memo.get(key)
    if isinstance(cached, DayBars):
        return cached
    rng = random.Random(f"{seed}/{bars.symbol}/{int(bars.t[0])}/iex")
    keep = np.array([rng.random() * 100 >= missing_pct for _ in range(len(bars))], dtype=bool)
    o, h, low, c = (a[keep].astype(np.float64).copy() for a in (bars.o, bars.h, bars.low, bars.c))
    for arr in (o, h, low, c):
        for i in range(len(arr)):
            if arr[i] >= 1.0 and rng.random() < NUDGE_PROBABILITY:
                arr[i] = round(arr[i] + rng.choice((-CENT, CENT)), 4)
    h = np.maximum.reduce([o, h, low, c])
    low = np.minimum.reduce([o, h, low, c])
    v = np.maximum(1, np.round(bars.v[keep] * IEX_VOLUME_SHARE)).astype(np.int64)
    n = np.maximum(1, np.round(bars.n[keep] * IEX_VOLUME_SHARE)).astype(np.int64)
    vw = np.clip(bars.vw[keep].astype(np.float64), low, h)
    out = DayBars(bars.symbol, bars.t[keep].copy(), o, h, low, c, v, n, vw)
    bars.memo[key] = out
    return out


def feed_bars(bars: DayBars, feed: str, seed: int, missing_pct: float) -> DayBars:
    return iex_bars(bars, seed, missing_pct) if feed == "iex" else bars


def is_revised(seed: int, symbol: str, bar_start: float, pct: float) -> bool:
    """Does a late trade change this bar (a `u` 30 s after its close)? Seeded per bar."""
    return pct > 0 and random.Random(f"{seed}/{symbol}/{int(bar_start)}/late").random() * 100 < pct


def late_volume(volume: int) -> int:
    """The volume the first version of a revised bar lacks."""
    return max(1, volume // 10)


def index_of(bars: DayBars, bar_start: float) -> int | None:
    """The index of the bar starting at `bar_start`, or None when the feed has no such bar."""
    i = int(np.searchsorted(bars.t, bar_start))
    return i if i < len(bars) and int(bars.t[i]) == int(bar_start) else None
