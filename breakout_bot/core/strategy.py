"""The breakout strategy's arithmetic: box, signal, bracket prices, sizing. Pure: no I/O, no clock.

Semantics follow docs/design.md, "The strategy, precisely". Prices reach the tick through core/ticks.py.
The fast backtest kernel (backtest/kernel.py) mirrors `compute_box`, `bracket_prices` and
`bracket_skip_reason`; its parity tests hold it to these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

from .model import Bar, Box, Bracket, Side
from .ticks import MIN_LEG_DISTANCE, round_to_tick, snap_noise


def compute_box(bars: Sequence[Bar], min_range_pct: float) -> Box:
    """High/low over all `bars` (two independent comparisons: the guide's `elif` missed a bar that set both),
    range floored at `min_range_pct` percent of the box's last close."""
    if not bars:
        raise ValueError("a box needs at least one bar")
    # One plain loop: ~3x cheaper than max()/min() over comprehensions (a box per trade in a backtest).
    high = bars[0].high
    low = bars[0].low
    for bar in bars:
        if bar.high > high:
            high = bar.high
        if bar.low < low:
            low = bar.low
    last_close = bars[-1].close
    raw_range = high - low
    floor = last_close * min_range_pct / 100.0
    floored = raw_range < floor
    return Box(
        high=high,
        low=low,
        range=floor if floored else raw_range,
        last_close=last_close,
        floored=floored,
        start=bars[0].t,
        end=bars[-1].end,
    )


def breakout_signal(box: Box, close: float) -> Side | None:
    """A later bar closing above the box high buys; closing below the low sells short; nothing else."""
    if close > box.high:
        return "buy"
    if close < box.low:
        return "sell"
    return None


def bracket_prices(box: Box, side: Side) -> Bracket:
    """Long: stop = high - range, take-profit = high + range, both rounded down.
    Short: stop = low + range, take-profit = low - range, both rounded up.
    Either way the stop lands a hair further away and the take-profit a hair nearer: both stay valid."""
    if side == "buy":
        return Bracket(
            side=side,
            stop_price=round_to_tick(box.high - box.range, "down"),
            take_profit_price=round_to_tick(box.high + box.range, "down"),
        )
    return Bracket(
        side=side,
        stop_price=round_to_tick(box.low + box.range, "up"),
        take_profit_price=round_to_tick(box.low - box.range, "up"),
    )


def bracket_skip_reason(bracket: Bracket, last_price: float) -> str | None:
    """Why Alpaca would reject this bracket at `last_price`, or None when it is valid.

    Alpaca requires take_profit >= base + 0.01 and stop <= base - 0.01 for a buy (mirrored for a sell),
    $0.01 even for sub-dollar prices;
    a breakout bar that already closed at or beyond the take-profit makes the trade invalid: skip it.
    A stop price must also stay positive (a short on a cheap stock can push it to zero: skip then)."""
    price = snap_noise(last_price)
    # Alpaca's threshold is a flat $0.01 at every price level (also below $1, where the tick is
    # $0.0001): a sub-dollar take-profit one tick past the close is still rejected.
    step = MIN_LEG_DISTANCE
    if bracket.stop_price <= 0 or bracket.take_profit_price <= 0:
        return "bracket price not positive"
    if bracket.side == "buy":
        if bracket.take_profit_price < price + step:
            return (
                f"close {_shown(price)} already within {step} of (or above) take-profit "
                f"{bracket.take_profit_price}"
            )
        if bracket.stop_price > price - step:
            return f"stop {bracket.stop_price} not at least {step} below close {_shown(price)}"
    else:
        if bracket.take_profit_price > price - step:
            return (
                f"close {_shown(price)} already within {step} of (or below) take-profit "
                f"{bracket.take_profit_price}"
            )
        if bracket.stop_price < price + step:
            return f"stop {bracket.stop_price} not at least {step} above close {_shown(price)}"
    return None


def _shown(price: Decimal) -> Decimal:
    """A snapped price with its shortest digits, for messages (123.45, not 123.450000)."""
    return Decimal(repr(float(price)))


def position_size(fixed_qty: int, risk_pct: float | None, equity: float, entry: float, stop: Decimal) -> int:
    """Shares for one trade: the fixed quantity, or (with risk_pct) as many as lose risk_pct % of
    equity if the stop is hit. Whole shares, at least 0 (0 = too small to trade)."""
    if risk_pct is None:
        return fixed_qty
    distance = abs(entry - float(stop))
    if distance <= 0 or equity <= 0:
        return 0
    return int(equity * risk_pct / 100.0 // distance)


def is_valid_bar(bar: Bar) -> bool:
    """OHLC consistent and finite: bad data never reaches a decision."""
    # Chained comparisons: False for any NaN, and every price lies in [low, high] with 0 < low and
    # high < inf, so all four are finite and positive.
    low, high = bar.low, bar.high
    return 0 < low <= bar.open <= high < math.inf and low <= bar.close <= high
