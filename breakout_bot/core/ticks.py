"""Prices on Alpaca's ticks: the increments an order may carry, float noise removed, and fill prices.

Bar prices are floats (fast, as data arrives); order prices are Decimals on a valid tick, because Alpaca
rejects sub-penny prices and float noise (100.5 - 0.3 = 100.19999999999999) must not move a price by a
whole tick. The fast backtest kernel (backtest/kernel.py) mirrors these functions in integer
micro-dollars; its parity tests hold the two equal.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

PENNY = Decimal("0.01")
SUB_DOLLAR_TICK = Decimal("0.0001")
# Alpaca: take_profit.limit_price >= base_price + 0.01 and stop_loss.stop_price <= base_price - 0.01 (buy;
# mirrored for a sell), whatever the price level.
MIN_LEG_DISTANCE = Decimal("0.01")
# Snapping to 1e-6 before directional rounding removes float noise (|noise| ~ 1e-12) while keeping
# every real sub-tick digit (ticks are >= 1e-4).
_NOISE_DECIMALS = 6
# A fill price from a bar (a float) keeps 4 decimals: the finest tick.
_FILL_DECIMALS = 4


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


def fill_price(value: float) -> Decimal:
    """A bar price (float, maybe with float noise) as the Decimal a fill reports (4 decimals):
    `Decimal(repr(round(value, 4)))`, digits included."""
    if -1e10 < value < 1e10:
        # ~25 % cheaper: "%.4f" rounds as round(value, 4) does, and below 1e10 (at most 14 significant
        # digits) repr of the rounded float is those digits without trailing zeros (one kept: "100.0").
        digits = f"{value:.4f}".rstrip("0")
        return Decimal(digits + "0" if digits[-1] == "." else digits)
    return Decimal(repr(round(value, _FILL_DECIMALS)))


def decimals_allowed(price: Decimal) -> int:
    """How many decimals an order price may carry at this level (2 at or above $1, 4 below)."""
    return 2 if tick_size(price) is PENNY else 4
