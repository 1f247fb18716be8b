"""The breakout strategy's arithmetic: box, signal, bracket prices, ticks. Pure: no I/O, no clock.

Semantics follow DESIGN.md, "The strategy, precisely". Bar prices are floats (fast, as data arrives);
order prices are Decimals on a valid tick, because Alpaca rejects sub-penny prices and float noise
(e.g. 100.5 - 0.3 = 100.19999999999999) must not move a price by a whole tick.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

from .valuetype import value_type

Side = Literal["buy", "sell"]

BAR_LENGTH = timedelta(minutes=1)
PENNY = Decimal("0.01")
SUB_DOLLAR_TICK = Decimal("0.0001")
# Alpaca: take_profit.limit_price >= base_price + 0.01 and stop_loss.stop_price <= base_price - 0.01 (buy;
# mirrored for a sell), whatever the price level.
MIN_LEG_DISTANCE = Decimal("0.01")
# Snapping to 1e-6 before directional rounding removes float noise (|noise| ~ 1e-12) while keeping
# every real sub-tick digit (ticks are >= 1e-4).
_NOISE_DECIMALS = 6


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


def tick_size(price: Decimal | float) -> Decimal:
    """Alpaca's minimum increment: $0.01 at or above $1.00, $0.0001 below."""
    # A float compares with 1 exactly as its shortest repr (the Decimal the order carries) does.
    return PENNY if price >= 1 else SUB_DOLLAR_TICK


def snap_noise(price: float) -> Decimal:
    """`Decimal(repr(round(price, 6)))`: the price without float noise (the value; not always the
    same digits: "123.450000" for 123.45)."""
    if -1e8 < price < 1e8:
        # ~3x cheaper: "%.6f" rounds as round(price, 6) does (correctly, half to even), and below 1e8
        # (at most 14 significant digits) the float that round() returns reprs as exactly that value.
        return Decimal(f"{price:.6f}")
    return Decimal(repr(round(price, _NOISE_DECIMALS)))


def round_to_tick(price: float, direction: Literal["down", "up"]) -> Decimal:
    """Round to a valid tick in the given direction, ignoring float noise."""
    snapped = snap_noise(price)
    rounding = ROUND_FLOOR if direction == "down" else ROUND_CEILING
    tick = tick_size(snapped)
    rounded = snapped.quantize(tick, rounding=rounding)
    if tick_size(rounded) is not tick:
        # Rounding crossed $1 (0.99995 -> 1.0000): re-quantize on the tick of the result.
        rounded = rounded.quantize(tick_size(rounded), rounding=rounding)
    return rounded


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
