"""The fast kernel is the event path, trade for trade.

* Its integer tick arithmetic is ticks.round_to_tick / strategy.bracket_skip_reason / ticks.fill_price
  exactly (hypothesis, against the Decimal originals).
* On random bars (hypothesis: 1-3 sessions, random walks with jumps, sub-dollar prices, gaps, data
  starting late / ending early, early closes, pre-market and invalid rows) and on realistic synthetic
  and real sessions, `fast_backtest` and `engine.run_backtest` (machine.step + the simulated broker)
  produce identical `Trade.key()` lists for many parameter sets.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from shared_data import shared_minute_file

from breakout_bot.backtest import kernel
from breakout_bot.backtest.kernel import (
    PreparedBars,
    fast_backtest,
    fill_price_u8,
    prepare_bars,
    round_tick_micro,
    run_kernel,
    skip_bracket,
    snap_micro,
    sweep_stats,
)
from breakout_bot.backtest.trades import Trade
from breakout_bot.core.model import NEW_YORK as NY
from breakout_bot.core.model import Bracket
from breakout_bot.core.params import Params
from breakout_bot.core.strategy import bracket_skip_reason
from breakout_bot.core.ticks import fill_price, round_to_tick
from breakout_bot.market.calendar import xnys

engine = pytest.importorskip("breakout_bot.backtest.engine")
run_backtest = engine.run_backtest

SYMBOL = "TEST"


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    kernel.warm_up()  # compile (or load numba's cache) once, outside the timed hypothesis examples


# ------------------------------------------------------------------------------- exact arithmetic

prices = st.one_of(
    st.floats(min_value=-5.0, max_value=1e7, allow_nan=False, allow_infinity=False),
    st.floats(min_value=0.0, max_value=2.0),
    # decimals on and near the ticks, with float noise around them
    st.builds(
        lambda d, noise: float(d) + noise,
        st.decimals(min_value=0, max_value=2000, places=6),
        st.sampled_from([0.0, 1e-12, -1e-12, 5e-7, -5e-7, 1e-9]),
    ),
    # exact binary ties of the 1e-6 / 1e-4 snaps (e.g. 1/128 = 0.0078125)
    st.builds(lambda k, e: (2 * k + 1) * 15625 / 2.0**e, st.integers(0, 10**6), st.integers(7, 30)),
    st.builds(lambda k, e: (2 * k + 1) * 625 / 2.0**e, st.integers(0, 10**6), st.integers(5, 24)),
)


@settings(max_examples=1500)
@given(prices)
@example(0.0078125)
@example(0.99995)
@example(100.5 - 0.3)
@example(-0.00005)
def test_tick_rounding_is_round_to_tick(price: float) -> None:
    for direction in ("down", "up"):
        expected = round_to_tick(price, direction)
        got = round_tick_micro(price, direction == "up")
        assert Decimal(got) / 10**6 == expected, (price, direction)
        assert got / 1e6 == float(expected)  # the float the engine puts in a Trade


@settings(max_examples=1000)
@given(prices)
@example(0.0078125)
@example(2.675)
def test_snaps_are_pythons_round(price: float) -> None:
    assert Decimal(snap_micro(price)) / 10**6 == Decimal(repr(round(price, 6)))
    if price > 0:
        assert Decimal(fill_price_u8(price)) / 10**8 == fill_price(price)


@settings(max_examples=1000)
@given(
    st.booleans(),
    st.integers(-200, 2_000_000),
    st.integers(-200, 2_000_000),
    st.one_of(st.floats(min_value=0.0001, max_value=25.0), st.decimals(0, 25, places=4).map(float)),
)
def test_skip_is_bracket_skip_reason(is_long: bool, stop_u: int, tp_u: int, close: float) -> None:
    bracket = Bracket("buy" if is_long else "sell", Decimal(stop_u) / 10**6, Decimal(tp_u) / 10**6)
    assert skip_bracket(is_long, stop_u, tp_u, close) == (bracket_skip_reason(bracket, close) is not None)


def test_slippage_must_fit_the_integer_prices() -> None:
    assert kernel.slippage_u8(0.01) == 1_000_000
    assert kernel.slippage_u8(0.00000001) == 1
    with pytest.raises(ValueError):
        kernel.slippage_u8(1e-9)
    with pytest.raises(ValueError):
        kernel.slippage_u8(-0.01)


# ------------------------------------------------------------------------------- bar generators

SESSION_DAYS = [
    dt.date(2024, 3, 4),
    dt.date(2024, 3, 5),
    dt.date(2024, 3, 6),
    dt.date(2024, 11, 29),  # early close 13:00
    dt.date(2015, 12, 24),  # early close 13:00
    dt.date(2024, 7, 3),  # early close 13:00
    dt.date(2024, 3, 9),  # a Saturday: no session, every bar dropped
]


def _session_bars(rng: np.random.Generator, day: dt.date, knobs: dict[str, Any]) -> pd.DataFrame:
    session = xnys().session(day)
    if session is None:  # weekend/holiday rows: both engines must drop them
        start = int(dt.datetime(day.year, day.month, day.day, 10, 0, tzinfo=NY).timestamp())
        minutes = 30
    else:
        start, minutes = int(session.open), session.minutes
    first = 0 if rng.random() < 0.6 else int(rng.integers(0, minutes))
    last = minutes if rng.random() < 0.6 else int(rng.integers(first + 1, minutes + 1))
    idx = np.arange(first, last)
    keep = rng.random(len(idx)) >= knobs["gap_rate"]
    if rng.random() < 0.3 and len(idx) > 10:  # one long hole (e.g. a halt, or around the flatten time)
        a = int(rng.integers(0, len(idx)))
        keep[a : a + int(rng.integers(1, 40))] = False
    idx = idx[keep]
    if rng.random() < 0.3:  # pre-market rows: never part of a session
        idx = np.concatenate((np.arange(-30, -25), idx))
    n = len(idx)
    if n == 0:
        return pd.DataFrame(columns=["open", "high", "low", "close", "volume"])
    sigma = knobs["sigma"]
    steps = rng.normal(0.0, sigma, n)
    jumps = rng.random(n) < knobs["jump_rate"]
    steps[jumps] += rng.choice([-1.0, 1.0], jumps.sum()) * rng.uniform(0.01, 0.06, jumps.sum())
    if knobs["flat"]:
        steps[rng.random(n) < 0.7] = 0.0  # long runs of equal prices: the range floor matters
    level = knobs["level"] * math.exp(float(rng.normal(0, 0.02)))
    close = level * np.exp(np.cumsum(steps))
    open_ = np.concatenate(([level], close[:-1])) * np.exp(
        rng.normal(0, sigma / 4, n) * (rng.random(n) < 0.5)
    )
    wick = np.abs(rng.normal(0, sigma, (2, n))) * (rng.random((2, n)) < 0.8)
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    decimals = knobs["decimals"]
    if decimals is not None:
        open_, high, low, close = (np.round(x, decimals) for x in (open_, high, low, close))
    floor = 10.0**-4
    open_, close = np.maximum(open_, floor), np.maximum(close, floor)
    high = np.maximum(high, np.maximum(open_, close))
    low = np.maximum(np.minimum(low, np.minimum(open_, close)), floor)
    if knobs["invalid"] and n > 3:
        j = int(rng.integers(0, n))
        high[j], low[j] = low[j] * 0.99, high[j] * 1.01  # high < low: dropped by both
    times = pd.to_datetime(start + idx * 60, unit="s", utc=True).tz_convert(NY)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": 100.0},
        index=pd.DatetimeIndex(times, name="timestamp"),
    )


@st.composite
def bar_frames(draw: st.DrawFn) -> pd.DataFrame:
    days = sorted(set(draw(st.lists(st.sampled_from(SESSION_DAYS), min_size=1, max_size=3))))
    seed = draw(st.integers(0, 2**32 - 1))
    knobs = {
        "level": draw(st.sampled_from([0.08, 0.5, 0.97, 1.02, 3.0, 25.0, 180.0, 600.0])),
        "sigma": draw(st.sampled_from([0.0004, 0.0015, 0.006])),
        "jump_rate": draw(st.sampled_from([0.0, 0.01, 0.05])),
        "gap_rate": draw(st.sampled_from([0.0, 0.0, 0.05, 0.3])),
        "decimals": draw(st.sampled_from([2, 2, 4, None])),
        "flat": draw(st.booleans()),
        "invalid": draw(st.booleans()),
    }
    rng = np.random.default_rng(seed)
    frames = [_session_bars(rng, d, knobs) for d in days]
    frames = [f for f in frames if len(f)]
    if not frames:
        return _session_bars(np.random.default_rng(0), dt.date(2024, 3, 4), {**knobs, "gap_rate": 0.0})
    return pd.concat(frames)


param_sets = st.builds(
    Params,
    lookback=st.integers(1, 20),
    min_range_pct=st.sampled_from([0.05, 0.1, 0.3, 0.5, 1.0]) | st.floats(0.05, 1.0),
    qty=st.sampled_from([1, 100, 250]),
    no_entry_minutes=st.sampled_from([0, 5, 20, 60, 400]),
    flatten_minutes=st.sampled_from([0, 1, 5, 15, 30]),
    max_trades=st.sampled_from([0, 0, 1, 2, 3]),
    max_daily_loss=st.sampled_from([0.0, 0.0, 5.0, 50.0]),
)


def _diff(event: list[Trade], fast: list[Trade]) -> str:
    for i, (a, b) in enumerate(zip(event, fast, strict=False)):
        if a.key() != b.key():
            return f"trade {i}:\n  event path: {a.key()}\n  kernel:     {b.key()}"
    longer = "event path" if len(event) > len(fast) else "kernel"
    extra = (event if len(event) > len(fast) else fast)[min(len(event), len(fast))]
    return f"{len(event)} vs {len(fast)} trades; first extra ({longer}): {extra.key()}"


def assert_same_trades(
    bars: pd.DataFrame, params: Params, *, slippage: float = 0.0, commission: float = 0.0
) -> list[Trade]:
    event = run_backtest(
        bars, SYMBOL, params, slippage_per_share=slippage, commission_per_share=commission
    ).trades
    fast = fast_backtest(bars, SYMBOL, params, slippage_per_share=slippage, commission_per_share=commission)
    assert [t.key() for t in event] == [t.key() for t in fast], _diff(event, fast)
    for a, b in zip(event, fast, strict=True):
        assert b.commission == pytest.approx(a.commission)
        assert (b.box_high, b.box_low, b.box_range) == (a.box_high, a.box_low, a.box_range)
    return fast


# ------------------------------------------------------------------------------- identity


@settings(max_examples=250)
@given(bar_frames(), param_sets, st.sampled_from([0.0, 0.0, 0.01, 0.0003]))
def test_identity_on_random_bars(bars: pd.DataFrame, params: Params, slippage: float) -> None:
    assert_same_trades(bars, params, slippage=slippage, commission=0.005)


def _synthetic(days: int, seed: int) -> pd.DataFrame:
    from breakout_bot.market.synthetic import synthetic_bars

    return synthetic_bars(SYMBOL, seed, days, start=dt.date(2024, 11, 20))  # includes the 11-29 half day


SWEEP_LIKE = [
    Params(),
    Params(lookback=2, min_range_pct=0.05),
    Params(lookback=5, min_range_pct=0.1, max_trades=3),
    Params(lookback=15, min_range_pct=0.5, no_entry_minutes=60, flatten_minutes=15),
    Params(lookback=20, min_range_pct=1.0, max_daily_loss=40.0),
    Params(lookback=8, min_range_pct=0.2, no_entry_minutes=0, flatten_minutes=0),
    Params(lookback=10, min_range_pct=0.3, qty=37, max_trades=1, flatten_minutes=1),
]


@pytest.mark.parametrize("params", SWEEP_LIKE, ids=lambda p: f"L{p.lookback}-r{p.min_range_pct}")
def test_identity_on_realistic_sessions(params: Params) -> None:
    bars = _synthetic(15, seed=11)
    trades = assert_same_trades(bars, params, slippage=0.01, commission=0.005)
    assert trades, "realistic sessions should trade"
    assert {t.exit_reason for t in trades} >= {"take_profit", "stop_loss"}


@pytest.mark.parametrize(
    "name", ["lean_spy_1min.csv", "lean_goog_1min.csv", "spy_1min_2025-07_yfinance.csv", "lean_aapl_1min.csv"]
)
def test_identity_on_real_bars(name: str) -> None:
    path = shared_minute_file(name)
    if path is None:
        pytest.skip(f"{name} not available")
    from breakout_bot.market.bars import load_bars

    bars = load_bars(path)
    for params in SWEEP_LIKE[:4]:
        assert_same_trades(bars, params, slippage=0.01)


# ------------------------------------------------------------------------------- the kernel itself


def test_gap_into_the_flatten_window_closes_at_that_open() -> None:
    """Data resumes after close - 5 min: the flatten fires on the clock, the legs are not checked,
    the position closes at the open of the first bar after the gap."""
    day = dt.date(2024, 3, 4)
    s = xnys().session(day)
    assert s is not None
    minutes = [*range(0, 370), *range(387, 390)]  # 15:40 .. 15:56 missing
    price = np.full(len(minutes), 100.0)
    price[:10] = 100.0 + np.arange(10) * 0.01  # box 100.00-100.09
    price[10:] = 100.15  # breakout at 09:40 -> long at 09:41's open; stop 100.00, take-profit 100.20
    open_ = price.copy()
    open_[minutes.index(387)] = 99.0  # far beyond the stop, but the legs are canceled by then
    bars = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, price) + 0.01,
            "low": np.minimum(open_, price),
            "close": price,
        },
        index=pd.to_datetime([int(s.open) + m * 60 for m in minutes], unit="s", utc=True).tz_convert(NY),
    )
    trades = assert_same_trades(bars, Params(lookback=10, min_range_pct=0.05))
    assert len(trades) == 1
    (trade,) = trades
    assert trade.side == "buy" and trade.exit_reason == "flatten" and trade.exit_price == 99.0
    assert trade.exit_time == dt.datetime(2024, 3, 4, 15, 57, tzinfo=NY)


def test_empty_and_out_of_session_bars() -> None:
    empty = pd.DataFrame(
        {c: pd.Series(dtype=float) for c in ("open", "high", "low", "close")},
        index=pd.DatetimeIndex([], tz=NY),
    )
    assert fast_backtest(empty, SYMBOL, Params()) == []
    weekend = _session_bars(np.random.default_rng(1), dt.date(2024, 3, 9), _CALM)
    assert len(weekend) and fast_backtest(weekend, SYMBOL, Params()) == []
    naive = _synthetic(1, seed=3).tz_localize(None)  # naive = New York time
    assert fast_backtest(naive, SYMBOL, Params()) == fast_backtest(_synthetic(1, seed=3), SYMBOL, Params())


_CALM = {
    "level": 50.0,
    "sigma": 0.001,
    "jump_rate": 0.0,
    "gap_rate": 0.0,
    "decimals": 2,
    "flat": False,
    "invalid": False,
}


def test_plain_python_fallback_is_the_same_loop() -> None:
    """Without numba the very same functions run as Python: same arrays."""
    prepared = prepare_bars(_synthetic(2, seed=5))
    params = Params(lookback=7, min_range_pct=0.1)
    compiled = run_kernel(prepared, params, slippage_per_share=0.01)
    py = {name: getattr(getattr(kernel, name), "py_func", None) for name in ("_kernel",)}
    if py["_kernel"] is None:
        pytest.skip("numba not installed: the kernel already is plain Python")
    cap = len(prepared) // 2 + len(prepared.bounds) + 1
    out_i = np.zeros((cap, compiled.ints.shape[1]), dtype=np.int64)
    out_f = np.zeros((cap, compiled.floats.shape[1]))
    n = py["_kernel"](
        prepared.t, prepared.o, prepared.h, prepared.lo, prepared.c, prepared.bounds, prepared.close_t,
        7, 0.1, 100, 20 * 60, 5 * 60, 0, 0.0, 1_000_000, out_i, out_f,
    )  # fmt: skip
    assert n == len(compiled)
    assert np.array_equal(out_i[:n], compiled.ints) and np.array_equal(out_f[:n], compiled.floats)


def test_sweep_stats_match_the_trades() -> None:
    prepared = prepare_bars(_synthetic(10, seed=9))
    sets = [Params(lookback=lb, min_range_pct=r) for lb in (3, 10) for r in (0.1, 0.4)]
    stats = sweep_stats(prepared, sets, commission_per_share=0.005, slippage_per_share=0.01)
    for row, params in zip(stats, sets, strict=True):
        trades = fast_backtest(prepared, SYMBOL, params, commission_per_share=0.005, slippage_per_share=0.01)
        pnl = np.array([t.net_pnl for t in trades])
        equity = np.cumsum(pnl)
        drawdown = np.max(np.maximum.accumulate(np.concatenate(([0.0], equity)))[1:] - equity)
        assert row[0] == len(trades)
        win = pnl > 1e-9  # the kernel's P&L is exact (integer prices); Trade.net_pnl is float arithmetic
        assert row[1] == win.sum()
        assert row[2] == pytest.approx(pnl.sum(), abs=1e-6)
        assert row[3] == pytest.approx(pnl[win].sum(), abs=1e-6)
        assert row[4] == pytest.approx(-pnl[~win].sum(), abs=1e-6)
        assert row[5] == pytest.approx(max(drawdown, 0.0), abs=1e-6)


def test_prepared_bars_split_sessions_and_early_closes() -> None:
    bars = _synthetic(8, seed=2)
    prepared = prepare_bars(bars)
    assert isinstance(prepared, PreparedBars)
    assert len(prepared) == len(bars)
    lengths = np.diff(prepared.bounds)
    assert lengths.tolist().count(210) == 1  # 2024-11-29: 09:30-13:00
    assert set(lengths.tolist()) <= {210, 390}
    assert (np.diff(prepared.t) > 0).all()
