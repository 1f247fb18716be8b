"""The strategy's arithmetic (box, signal, ticks, bracket), by hand-computed examples and properties."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from breakout_bot.core.model import Bar, Box, Bracket
from breakout_bot.core.strategy import (
    bracket_prices,
    bracket_skip_reason,
    breakout_signal,
    compute_box,
    is_valid_bar,
)
from breakout_bot.core.ticks import round_to_tick, snap_noise, tick_size

NY = ZoneInfo("America/New_York")
T0 = datetime(2024, 3, 5, 9, 30, tzinfo=NY)
PCT = 0.3  # the guide's 0.3 % floor, in percent as Params.min_range_pct
CENT = Decimal("0.01")


def bar(i: int, o: float, h: float, low: float, c: float) -> Bar:
    return Bar(t=T0 + timedelta(minutes=i), open=o, high=h, low=low, close=c)


def flat_bars(prices: list[tuple[float, float]], close: float | None = None) -> list[Bar]:
    """Bars with the given (high, low); open = close = midpoint unless `close` is given for the last."""
    out = []
    for i, (h, low) in enumerate(prices):
        mid = (h + low) / 2
        c = close if (close is not None and i == len(prices) - 1) else mid
        out.append(bar(i, mid, h, low, c))
    return out


def box_of(high: float, low: float, rng: float, last_close: float = 0.0) -> Box:
    return Box(
        high=high,
        low=low,
        range=rng,
        last_close=last_close or (high + low) / 2,
        floored=False,
        start=T0,
        end=T0 + timedelta(minutes=10),
    )


# ---------------------------------------------------------------- the guide's own example


def test_guide_example_short_signal() -> None:
    # Ten bars whose extremes are the guide's 251.74 / 250.67 (range 1.07, well above 0.3 % of ~251).
    bars = flat_bars([(251.30, 250.90)] * 4 + [(251.74, 251.00)] + [(251.40, 250.67)] + [(251.2, 250.8)] * 4)
    box = compute_box(bars, PCT)
    assert (box.high, box.low) == (251.74, 250.67)
    assert box.range == pytest.approx(1.07)
    assert not box.floored
    assert breakout_signal(box, 250.60) == "sell"
    bracket = bracket_prices(box, "sell")
    assert bracket == Bracket("sell", stop_price=Decimal("251.74"), take_profit_price=Decimal("249.60"))
    assert bracket_skip_reason(bracket, 250.60) is None


def test_guide_example_long_signal() -> None:
    bars = flat_bars([(251.74, 250.67)] + [(251.2, 250.8)] * 9)
    box = compute_box(bars, PCT)
    assert breakout_signal(box, 251.80) == "buy"
    bracket = bracket_prices(box, "buy")
    assert bracket == Bracket("buy", stop_price=Decimal("250.67"), take_profit_price=Decimal("252.81"))


# ---------------------------------------------------------------- box


def test_bar_setting_both_new_high_and_new_low_counts_for_both() -> None:
    # The guide's `if high ... elif low` would keep low = 10.0 here: bar 1 sets a new high AND a new low.
    bars = [bar(0, 10.2, 10.5, 10.0, 10.2), bar(1, 10.0, 11.0, 9.0, 10.0), bar(2, 10.1, 10.3, 9.8, 10.1)]
    box = compute_box(bars, PCT)
    assert box.high == 11.0
    assert box.low == 9.0
    assert box.range == pytest.approx(2.0)


def test_guide_elif_bug_would_differ() -> None:
    """Sanity: the guide's loop really gets this case wrong (so the previous test can fail)."""
    bars = [bar(0, 10.2, 10.5, 10.0, 10.2), bar(1, 10.0, 11.0, 9.0, 10.0)]
    high, low = bars[0].high, bars[0].low
    for b in bars:
        if b.high > high:
            high = b.high
        elif b.low < low:
            low = b.low
    assert low == 10.0 != compute_box(bars, PCT).low


def test_floor_is_measured_against_last_close_not_first() -> None:
    # Raw range 0.10 is below both floors; 0.3 % of the first close (100.00) is 0.30, of the last (100.10)
    # is 0.3003: the range must be the latter.
    bars = [bar(0, 100.0, 100.05, 100.0, 100.0)]
    bars += [bar(i, 100.05, 100.08, 100.02, 100.05) for i in range(1, 9)]
    bars.append(bar(9, 100.05, 100.10, 100.04, 100.10))
    box = compute_box(bars, PCT)
    assert box.floored
    assert box.last_close == 100.10
    assert box.range == pytest.approx(0.3003)
    assert box.range != pytest.approx(0.30)
    assert (box.start, box.end) == (T0, T0 + timedelta(minutes=10))


def test_floor_widens_never_blocks() -> None:
    bars = [bar(i, 50.0, 50.0, 50.0, 50.0) for i in range(10)]  # zero raw range
    box = compute_box(bars, PCT)
    assert box.floored and box.range == pytest.approx(0.15)
    assert breakout_signal(box, 50.01) == "buy"
    bracket = bracket_prices(box, "buy")
    assert bracket == Bracket("buy", stop_price=Decimal("49.85"), take_profit_price=Decimal("50.15"))
    assert bracket_skip_reason(bracket, 50.01) is None
    # Wider than the floor: unchanged.
    wide = compute_box([bar(0, 50, 51, 49, 50)], PCT)
    assert not wide.floored and wide.range == 2.0


def test_compute_box_needs_bars() -> None:
    with pytest.raises(ValueError):
        compute_box([], PCT)


def test_signal_only_beyond_the_box() -> None:
    box = box_of(10.0, 9.0, 1.0)
    assert breakout_signal(box, 10.01) == "buy"
    assert breakout_signal(box, 8.99) == "sell"
    for close in (9.0, 9.5, 10.0):
        assert breakout_signal(box, close) is None


# ---------------------------------------------------------------- ticks


@pytest.mark.parametrize(
    ("price", "tick"),
    [
        (1, "0.01"),
        (1.0, "0.01"),
        (250.0, "0.01"),
        (0.9999, "0.0001"),
        (0.5, "0.0001"),
        (Decimal("1.00"), "0.01"),
    ],
)
def test_tick_size(price: float | Decimal, tick: str) -> None:
    assert tick_size(price) == Decimal(tick)


@pytest.mark.parametrize(
    ("price", "direction", "expected"),
    [
        (100.5 - 0.3, "down", "100.20"),  # 100.19999999999999: float noise must not cost a tick
        (100.5 - 0.3, "up", "100.20"),
        (0.1 + 0.2, "up", "0.3000"),  # 0.30000000000000004
        (0.1 + 0.2, "down", "0.3000"),
        (1.234, "down", "1.23"),
        (1.234, "up", "1.24"),
        (251.745, "down", "251.74"),
        (251.741, "up", "251.75"),
        (0.12345, "down", "0.1234"),
        (0.12345, "up", "0.1235"),
        (0.99995, "up", "1.00"),  # crosses $1: the result lands on the penny grid
        (0.99999, "down", "0.9999"),
        (0.999999, "up", "1.00"),
        (1.004, "down", "1.00"),
        (1.001, "up", "1.01"),
        (5.0, "down", "5.00"),
    ],
)
def test_round_to_tick(price: float, direction: str, expected: str) -> None:
    got = round_to_tick(price, direction)  # type: ignore[arg-type]
    assert got == Decimal(expected)
    assert got % tick_size(got) == 0


def test_long_legs_round_down_short_legs_round_up() -> None:
    long = bracket_prices(box_of(100.004, 99.0, 1.0), "buy")
    assert long == Bracket("buy", stop_price=Decimal("99.00"), take_profit_price=Decimal("101.00"))
    short = bracket_prices(box_of(101.0, 99.996, 1.0), "sell")
    assert short == Bracket("sell", stop_price=Decimal("101.00"), take_profit_price=Decimal("99.00"))
    # Sub-dollar: 0.0001 tick.
    cheap_long = bracket_prices(box_of(0.51234, 0.5, 0.01001), "buy")
    assert cheap_long == Bracket("buy", stop_price=Decimal("0.5023"), take_profit_price=Decimal("0.5223"))
    cheap_short = bracket_prices(box_of(0.52, 0.50006, 0.01001), "sell")
    assert cheap_short == Bracket("sell", stop_price=Decimal("0.5101"), take_profit_price=Decimal("0.4901"))


# ---------------------------------------------------------------- skip reasons (Alpaca's bracket rule)


def test_skip_when_breakout_bar_closed_beyond_take_profit() -> None:
    box = box_of(100.0, 99.0, 1.0)
    long = bracket_prices(box, "buy")  # stop 99.00, tp 101.00
    assert bracket_skip_reason(long, 100.50) is None
    assert bracket_skip_reason(long, 100.99) is None  # tp exactly close + 0.01: allowed
    assert bracket_skip_reason(long, 100.995) is not None  # within a cent of the tp
    reason = bracket_skip_reason(long, 101.50)
    assert reason is not None and "take-profit" in reason
    short = bracket_prices(box, "sell")  # stop 100.00, tp 98.00
    assert bracket_skip_reason(short, 98.5) is None
    assert bracket_skip_reason(short, 98.01) is None
    reason = bracket_skip_reason(short, 97.90)
    assert reason is not None and "take-profit" in reason


def test_skip_sub_dollar_uses_alpacas_flat_cent() -> None:
    """Alpaca wants tp >= base + 0.01 also below $1 (tick 0.0001). A tp 9 ticks above the close is rejected
    by Alpaca, so it must be skipped (it used to pass with a 0.0001 threshold)."""
    box = compute_box([bar(i, 0.4995, 0.5, 0.499, 0.4995) for i in range(10)], PCT)
    bracket = bracket_prices(box, "buy")
    assert bracket.take_profit_price == Decimal("0.5014")
    assert bracket_skip_reason(bracket, 0.5005) is not None
    # A wide sub-dollar box is fine.
    wide = bracket_prices(box_of(0.50, 0.40, 0.10), "buy")
    assert bracket_skip_reason(wide, 0.51) is None


def test_skip_when_stop_too_close_to_close() -> None:
    # Between $1 and $3.33, 0.3 % is below one cent: the rounded stop can sit within a cent of the close.
    box = compute_box([bar(i, 1.005, 1.005, 1.004, 1.005) for i in range(10)], PCT)
    bracket = bracket_prices(box, "buy")
    assert bracket.stop_price == Decimal("1.00")
    assert bracket_skip_reason(bracket, 1.006) is not None


def test_skip_when_short_take_profit_not_positive() -> None:
    bracket = bracket_prices(box_of(0.05, 0.01, 0.04), "sell")
    assert bracket.take_profit_price <= 0
    assert bracket_skip_reason(bracket, 0.009) == "bracket price not positive"


# ---------------------------------------------------------------- bar validity


@pytest.mark.parametrize(
    "values",
    [
        (math.nan, 1.0, 1.0, 1.0),
        (1.0, math.inf, 1.0, 1.0),
        (1.0, 1.0, 0.0, 1.0),
        (-1.0, 1.0, -2.0, -1.0),
        (1.0, 0.9, 1.1, 1.0),  # high < low
        (1.0, 1.2, 0.9, 1.3),  # close above high
        (0.8, 1.2, 0.9, 1.0),  # open below low
    ],
)
def test_invalid_bars(values: tuple[float, float, float, float]) -> None:
    o, h, low, c = values
    assert not is_valid_bar(Bar(T0, o, h, low, c))


def test_valid_bar() -> None:
    assert is_valid_bar(Bar(T0, 1.0, 1.2, 0.9, 1.1))
    assert is_valid_bar(Bar(T0, 0.0001, 0.0001, 0.0001, 0.0001))
    assert Bar(T0, 1, 1, 1, 1).end == T0 + timedelta(minutes=1)


# ---------------------------------------------------------------- properties

LEVELS = st.one_of(
    st.floats(min_value=0.01, max_value=0.999),  # sub-dollar
    st.floats(min_value=0.9, max_value=1.1),  # around the $1 tick change
    st.floats(min_value=1.0, max_value=5.0),  # where 0.3 % is under a cent
    st.floats(min_value=5.0, max_value=3000.0),
)


@st.composite
def bar_sequences(draw: st.DrawFn, n: int = 10) -> list[Bar]:
    level = draw(LEVELS)
    frac = st.floats(min_value=-0.02, max_value=0.02)
    wick = st.floats(min_value=0.0, max_value=0.01)
    bars = []
    for i in range(n):
        o = round(level * (1 + draw(frac)), 4)
        c = round(level * (1 + draw(frac)), 4)
        h = round(max(o, c) * (1 + draw(wick)), 4)
        low = round(min(o, c) * (1 - draw(wick)), 4)
        bars.append(Bar(T0 + timedelta(minutes=i), o, h, low, c))
    return bars


def _on_tick(price: Decimal) -> bool:
    return price % tick_size(price) == 0


def _alpaca_accepts(b: Bracket, close: float) -> bool:
    """Alpaca's bracket rule, stated independently of the code under test."""
    base = Decimal(repr(close))
    if b.stop_price <= 0 or b.take_profit_price <= 0:
        return False
    if b.side == "buy":
        return b.take_profit_price >= base + CENT and b.stop_price <= base - CENT
    return b.take_profit_price <= base - CENT and b.stop_price >= base + CENT


@settings(max_examples=150)
@given(bar_sequences())
def test_box_properties(bars: list[Bar]) -> None:
    assert all(is_valid_bar(b) for b in bars)
    box = compute_box(bars, PCT)
    floor = bars[-1].close * PCT / 100
    assert box.high == max(b.high for b in bars)
    assert box.low == min(b.low for b in bars)
    assert box.high >= box.low
    assert box.range >= floor > 0
    assert box.range >= box.high - box.low
    assert box.range == pytest.approx(max(box.high - box.low, floor))


@settings(max_examples=150)
@given(bar_sequences(), st.sampled_from(["buy", "sell"]))
def test_bracket_properties(bars: list[Bar], side: str) -> None:
    box = compute_box(bars, PCT)
    b = bracket_prices(box, side)  # type: ignore[arg-type]
    for price in (b.stop_price, b.take_profit_price):
        assert _on_tick(abs(price)) or price <= 0
    stop, tp = float(b.stop_price), float(b.take_profit_price)
    # round_to_tick snaps to 1e-6 first (float noise); a value within 1e-6 of a tick counts as on it.
    eps = 1.01e-6
    if side == "buy":
        exact_stop, exact_tp = box.high - box.range, box.high + box.range
        # Both round down, by less than one tick.
        assert stop <= exact_stop + eps and stop > exact_stop - float(tick_size(b.stop_price)) - eps
        assert tp <= exact_tp + eps and tp > exact_tp - float(tick_size(b.take_profit_price)) - eps
        assert stop < box.high
        assert b.take_profit_price >= round_to_tick(box.high, "down")
        assert b.take_profit_price >= b.stop_price
    else:
        exact_stop, exact_tp = box.low + box.range, box.low - box.range
        assert stop >= exact_stop - eps and stop < exact_stop + float(tick_size(abs(b.stop_price))) + eps
        assert tp >= exact_tp - eps and tp < exact_tp + float(tick_size(abs(b.take_profit_price))) + eps
        assert stop > box.low
        assert b.take_profit_price <= round_to_tick(box.low, "up")
        assert b.take_profit_price <= b.stop_price


@settings(max_examples=150)
@given(bar_sequences(), st.floats(min_value=0.0001, max_value=0.05), st.booleans())
def test_skip_reason_agrees_with_alpacas_rule(bars: list[Bar], beyond: float, up: bool) -> None:
    box = compute_box(bars, PCT)
    close = round(box.high * (1 + beyond) if up else box.low * (1 - beyond), 4)
    side = breakout_signal(box, close)
    if side is None:  # rounding landed the close back on the box edge
        assert box.low <= close <= box.high
        return
    assert side == ("buy" if up else "sell")
    b = bracket_prices(box, side)
    reason = bracket_skip_reason(b, close)
    assert (reason is None) == _alpaca_accepts(b, close), reason
    if reason is None:  # a submittable bracket has its legs at least two cents apart
        assert abs(b.take_profit_price - b.stop_price) >= 2 * CENT


@settings(max_examples=150)
@given(bar_sequences(), st.floats(min_value=0.001, max_value=5000.0))
def test_signal_none_iff_inside_box(bars: list[Bar], close: float) -> None:
    box = compute_box(bars, PCT)
    side = breakout_signal(box, close)
    assert (side is None) == (box.low <= close <= box.high)
    if side == "buy":
        assert close > box.high
    if side == "sell":
        assert close < box.low


@settings(max_examples=150)
@given(st.floats(min_value=0.0001, max_value=10000.0), st.sampled_from(["down", "up"]))
@example(0.03519959644730346, "down")  # 4e-7 below a tick: float noise, so on the tick (hypothesis found it)
def test_round_to_tick_properties(price: float, direction: str) -> None:
    got = round_to_tick(price, direction)  # type: ignore[arg-type]
    assert _on_tick(got)
    tick = max(tick_size(got), tick_size(price))
    # The price as round_to_tick reads it: without float noise (6 decimals, `_snap_reference`), so a
    # price a hair below a tick rounds down to that tick, not to the one before.
    snapped = _snap_reference(price)
    if direction == "down":
        assert snapped - tick < got <= snapped
    else:
        assert snapped <= got < snapped + tick


def _snap_reference(price: float) -> Decimal:
    """The noise snap's definition (what strategy.snap_noise computes faster)."""
    return Decimal(repr(round(price, 6)))


def _round_to_tick_reference(price: float, direction: str) -> Decimal:
    from decimal import ROUND_CEILING, ROUND_FLOOR

    snapped = _snap_reference(price)
    rounding = ROUND_FLOOR if direction == "down" else ROUND_CEILING
    rounded = snapped.quantize(tick_size(snapped), rounding=rounding)
    return rounded.quantize(tick_size(rounded), rounding=rounding)


# Prices as data gives them (few decimals, ties at the 7th), sums of them (float noise), and any float.
_noisy_prices = st.one_of(
    st.integers(min_value=-(10**14), max_value=10**14).map(lambda n: n / 10**6),
    st.integers(min_value=1, max_value=10**10).map(lambda n: n / 10**7),
    st.tuples(st.integers(1, 10**8), st.integers(1, 10**8)).map(lambda ab: ab[0] / 10**4 - ab[1] / 10**6),
    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
)


@settings(max_examples=3000)
@given(_noisy_prices, st.sampled_from(["down", "up"]))
def test_fast_noise_snap_and_rounding_equal_their_definitions(price: float, direction: str) -> None:
    assert snap_noise(price) == _snap_reference(price)
    got = round_to_tick(price, direction)  # type: ignore[arg-type]
    want = _round_to_tick_reference(price, direction)
    assert str(got) == str(want)  # the same digits too: the order carries str(price)


def test_fast_noise_snap_on_ties_and_noise() -> None:
    for price in (
        0.1 + 0.2,
        2.675,
        1.0000005,
        1.0000015,
        0.9999995,
        123.4567895,
        99999999.9999995,
        1e8 - 1e-7,
    ):
        assert snap_noise(price) == _snap_reference(price), price
