"""The event-path backtest: machine.step + the simulated broker, against hand-checked fills.

Synthetic days are built here bar by bar: a quiet 10-bar box at 100 (high 100.05, low 99.95, so the
0.3 % floor widens its range to 0.30), then deliberate breakouts. Real files (../shared/data/minute)
run end-to-end when present and are skipped cleanly otherwise.
"""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shared_data import shared_minute_dir

from breakout_bot.backtest.broker import BacktestBroker
from breakout_bot.backtest.engine import ReplayInput, replay_run, run_backtest
from breakout_bot.backtest.results import BacktestResult
from breakout_bot.backtest.trades import Trade
from breakout_bot.core.events import SubmitBracket
from breakout_bot.core.model import NEW_YORK as NY
from breakout_bot.core.model import OrderEvent, OrderStatus
from breakout_bot.core.params import Params
from breakout_bot.market.bar_arrays import BarArrays
from breakout_bot.market.bars import load_bars
from breakout_bot.market.calendar import xnys
from breakout_bot.market.synthetic import synthetic_bars

DATA = shared_minute_dir()

Q = 0.05  # half-range of the quiet bars
OHLC = tuple[float, float, float, float]


def quiet(p: float, q: float = Q) -> OHLC:
    return (p, p + q, p - q, p)


def make_day(
    day: dt.date, bars: dict[int, OHLC], level: float = 100.0, last: int | None = None
) -> pd.DataFrame:
    """One session of bars: minute i (0 = 09:30) from `bars`, else a quiet bar at the previous close
    (at `level` before the first override). `last` truncates the session after minute `last`."""
    session = xnys().session(day)
    assert session is not None
    n = session.minutes if last is None else last + 1
    rows = []
    price = level
    for i in range(n):
        bar = bars.get(i) or quiet(price, 0.02 if i >= 10 else Q)
        rows.append(bar)
        price = bar[3]
    idx = pd.DatetimeIndex([session.open_dt + dt.timedelta(minutes=i) for i in range(n)])
    return pd.DataFrame(rows, index=idx, columns=["open", "high", "low", "close"]).assign(volume=1000.0)


def at(day: dt.date, hh: int, mm: int) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY)


DAY = dt.date(2024, 3, 5)
P = Params()


def only_trade(result_trades: list[Trade]) -> Trade:
    assert len(result_trades) >= 1
    return result_trades[0]


def test_long_breakout_hits_take_profit() -> None:
    bars = make_day(
        DAY,
        {
            10: (100.0, 100.12, 100.0, 100.10),  # 09:40 closes above the box high 100.05
            11: (100.12, 100.20, 100.10, 100.15),  # 09:41: the market entry fills at this open
            12: (100.20, 100.40, 100.15, 100.30),  # 09:42: high reaches the take-profit 100.35
        },
    )
    r = run_backtest(bars, "TEST", P)
    t = only_trade(r.trades)
    assert (t.side, t.qty) == ("buy", 100)
    assert t.entry_time == at(DAY, 9, 41) and t.entry_price == 100.12
    assert (t.box_high, t.box_low) == (100.05, 99.95)
    assert t.box_range == pytest.approx(0.30)  # floored: 0.3 % of the box's last close 100.00
    assert (t.stop_price, t.take_profit_price) == (99.75, 100.35)
    assert t.exit_time == at(DAY, 9, 42) and t.exit_price == 100.35 and t.exit_reason == "take_profit"
    assert t.gross_pnl == pytest.approx(23.0)
    legs = [f.leg for f in r.fills[:2]]
    assert legs == ["entry", "take_profit"]
    assert r.sessions == 1 and r.bars_processed == 390


def test_short_breakout_hits_stop() -> None:
    bars = make_day(
        DAY,
        {
            10: (100.0, 100.0, 99.88, 99.90),  # closes below the low 99.95: short
            11: (99.88, 99.95, 99.80, 99.90),  # entry at 99.88
            12: (99.90, 100.10, 99.85, 100.0),
            13: (100.0, 100.30, 99.95, 100.2),  # high reaches the stop 100.25
        },
    )
    t = only_trade(run_backtest(bars, "TEST", P).trades)
    assert t.side == "sell" and t.entry_price == 99.88 and t.entry_time == at(DAY, 9, 41)
    assert (t.stop_price, t.take_profit_price) == (100.25, 99.65)
    assert (t.exit_reason, t.exit_price, t.exit_time) == ("stop_loss", 100.25, at(DAY, 9, 43))
    assert t.gross_pnl == pytest.approx(-37.0)


LONG_ENTRY = {10: (100.0, 100.12, 100.0, 100.10), 11: (100.12, 100.20, 100.10, 100.15)}


def test_gap_through_the_stop_fills_at_the_open() -> None:
    bars = make_day(DAY, {**LONG_ENTRY, 12: (99.50, 99.60, 99.40, 99.55)})
    t = only_trade(run_backtest(bars, "TEST", P).trades)
    assert (t.exit_reason, t.exit_price, t.exit_time) == ("stop_loss", 99.50, at(DAY, 9, 42))


def test_gap_beyond_the_take_profit_fills_at_the_better_open() -> None:
    bars = make_day(DAY, {**LONG_ENTRY, 12: (100.60, 100.70, 100.50, 100.55)})
    t = only_trade(run_backtest(bars, "TEST", P).trades)
    assert (t.exit_reason, t.exit_price) == ("take_profit", 100.60)


def test_both_legs_in_one_bar_take_the_stop() -> None:
    bars = make_day(DAY, {**LONG_ENTRY, 12: (100.10, 100.50, 99.60, 100.0)})
    t = only_trade(run_backtest(bars, "TEST", P).trades)
    assert (t.exit_reason, t.exit_price, t.exit_time) == ("stop_loss", 99.75, at(DAY, 9, 42))


def test_the_entry_bar_itself_can_hit_the_stop() -> None:
    bars = make_day(DAY, {10: LONG_ENTRY[10], 11: (100.12, 100.15, 99.70, 99.80)})
    t = only_trade(run_backtest(bars, "TEST", P).trades)
    assert t.entry_time == t.exit_time == at(DAY, 9, 41)
    assert (t.exit_reason, t.exit_price) == ("stop_loss", 99.75)


def test_narrow_box_is_widened_to_the_floor_of_its_last_close() -> None:
    # The box's last bar (09:39) closes at 100.02: the floor is 0.3 % of 100.02, not of the first close.
    bars = make_day(DAY, {9: (100.0, 100.05, 99.95, 100.02), 10: (100.02, 100.12, 100.0, 100.10)})
    t = only_trade(run_backtest(bars, "TEST", P).trades)
    assert t.box_range == pytest.approx(0.003 * 100.02)
    assert t.stop_price == 99.74  # 100.05 - 0.30006 = 99.74994, rounded down for a long
    assert t.take_profit_price == 100.35  # 100.35006 rounded down


def test_no_entry_in_the_last_20_minutes() -> None:
    # A breakout bar closing at 15:40 (20 minutes left) is not traded...
    late = make_day(DAY, {369: (100.0, 100.12, 100.0, 100.10)})
    assert run_backtest(late, "TEST", P).trades == []
    # ...one closing at 15:39 (21 minutes left) is, filled at the 15:39 bar's open.
    ok = make_day(DAY, {368: (100.0, 100.12, 100.0, 100.10)})
    t = only_trade(run_backtest(ok, "TEST", P).trades)
    assert t.entry_time == at(DAY, 15, 39)


def test_flatten_fills_at_the_open_of_the_1555_bar() -> None:
    bars = make_day(DAY, {**LONG_ENTRY, 385: (100.2, 100.25, 100.15, 100.2)})
    t = only_trade(run_backtest(bars, "TEST", P).trades)
    assert (t.exit_reason, t.exit_time, t.exit_price) == ("flatten", at(DAY, 15, 55), 100.2)


def test_early_close_day_flattens_at_1255() -> None:
    day = dt.date(2015, 12, 24)  # NYSE closes at 13:00
    bars = make_day(day, {**LONG_ENTRY, 205: (100.2, 100.25, 100.15, 100.2)})
    assert len(bars) == 210
    r = run_backtest(bars, "TEST", P)
    t = only_trade(r.trades)
    assert (t.exit_reason, t.exit_time, t.exit_price) == ("flatten", at(day, 12, 55), 100.2)
    assert r.session_minutes == 210


def test_rearm_uses_the_ten_bars_ending_with_the_exit_bar() -> None:
    bars = make_day(
        DAY,
        {
            10: (100.0, 100.12, 100.0, 100.10),
            11: (100.12, 100.20, 100.10, 100.15),
            12: (100.20, 100.40, 100.15, 100.30),  # exit bar (take-profit), high 100.40
            30: (100.30, 100.55, 100.30, 100.50),  # 10:00 closes above 100.40: the second long
        },
    )
    r = run_backtest(bars, "TEST", P)
    assert len(r.trades) == 2
    second = r.trades[1]
    # Box = bars 09:33..09:42: high 100.40 (the exit bar), low 99.95 (quiet opening bars).
    assert (second.box_high, second.box_low) == (100.40, 99.95)
    assert second.entry_time == at(DAY, 10, 1)


def test_pnl_commission_and_slippage_arithmetic() -> None:
    bars = make_day(
        DAY,
        {
            10: (100.0, 100.12, 100.0, 100.10),
            11: (100.12, 100.20, 100.10, 100.15),
            12: (100.20, 100.40, 100.15, 100.30),
        },
    )
    r = run_backtest(bars, "TEST", Params(qty=50), commission_per_share=0.005, slippage_per_share=0.01)
    t = r.trades[0]
    assert t.entry_price == pytest.approx(100.13)  # market buy: open + slippage
    assert t.exit_price == 100.35  # a take-profit is a limit: no slippage
    assert t.commission == pytest.approx(0.005 * 100)  # 50 shares in, 50 out
    assert t.gross_pnl == pytest.approx((100.35 - 100.13) * 50)
    assert t.net_pnl == pytest.approx((100.35 - 100.13) * 50 - 0.5)
    assert r.daily["pnl"].sum() == pytest.approx(sum(x.net_pnl for x in r.trades))
    assert r.daily["equity"].iloc[-1] == pytest.approx(100_000 + r.daily["pnl"].sum())


def test_stop_fill_pays_slippage() -> None:
    bars = make_day(DAY, {**LONG_ENTRY, 12: (100.10, 100.15, 99.60, 99.70)})
    t = run_backtest(bars, "TEST", P, slippage_per_share=0.02).trades[0]
    assert t.exit_price == pytest.approx(99.73)


def test_data_gap_over_the_flatten_time_closes_at_the_next_bar() -> None:
    bars = make_day(DAY, LONG_ENTRY)
    keep = ~((bars.index >= at(DAY, 15, 51)) & (bars.index < at(DAY, 15, 57)))
    bars = bars[keep]
    bars.loc[at(DAY, 15, 57), ["open", "high", "low", "close"]] = [100.3, 100.32, 100.28, 100.3]
    t = run_backtest(bars, "TEST", P).trades[0]
    assert (t.exit_reason, t.exit_time, t.exit_price) == ("flatten", at(DAY, 15, 57), 100.3)


def test_data_ending_early_closes_at_the_last_close() -> None:
    bars = make_day(DAY, {**LONG_ENTRY, 120: (100.2, 100.25, 100.15, 100.22)}, last=120)  # ends 11:30
    r = run_backtest(bars, "TEST", P)
    t = r.trades[0]
    assert (t.exit_reason, t.exit_price) == ("flatten", 100.22)
    assert t.exit_time == at(DAY, 15, 55)  # when the flatten was sent


def test_bars_outside_the_session_and_holidays_are_ignored() -> None:
    bars = make_day(DAY, LONG_ENTRY)
    pre = pd.DataFrame(
        [quiet(200.0)] * 3,
        index=pd.DatetimeIndex([at(DAY, 8, 0), at(DAY, 9, 29), at(DAY, 16, 0)]),
        columns=["open", "high", "low", "close"],
    )
    holiday = pre.set_axis(pd.DatetimeIndex([at(dt.date(2024, 12, 25), 10, m) for m in range(3)]))
    both = pd.concat([bars, pre, holiday]).sort_index()
    a = run_backtest(bars, "TEST", P)
    b = run_backtest(both, "TEST", P)
    assert [t.key() for t in a.trades] == [t.key() for t in b.trades]
    assert (b.bars_processed, b.sessions) == (390, 1)


def test_no_usable_bars_is_an_empty_result() -> None:
    empty = make_day(DAY, LONG_ENTRY).iloc[:0]
    nan_only = make_day(DAY, LONG_ENTRY).assign(close=np.nan)
    for bars in (empty, nan_only):
        result = run_backtest(bars, "TEST", P)
        assert (result.trades, result.fills, result.sessions, result.bars_processed) == ([], [], 0, 0)


def test_max_trades_per_day() -> None:
    bars = make_day(
        DAY,
        {
            10: (100.0, 100.12, 100.0, 100.10),
            11: (100.12, 100.20, 100.10, 100.15),
            12: (100.20, 100.40, 100.15, 100.30),
            30: (100.30, 100.55, 100.30, 100.50),
        },
    )
    assert len(run_backtest(bars, "TEST", Params(max_trades=1)).trades) == 1


def test_risk_pct_sizes_each_day_on_the_equity_at_its_open() -> None:
    """--risk-pct in a backtest: shares = equity x pct / (box level - stop), on the initial equity
    the first day and on the initial equity plus the net P&L so far after that (a backtest is flat
    between sessions, so that is the account's equity at the open)."""
    winning_long = {
        10: (100.0, 100.12, 100.0, 100.10),
        11: (100.12, 100.20, 100.10, 100.15),
        12: (100.20, 100.40, 100.15, 100.30),  # take-profit 100.35
    }
    day2 = dt.date(2024, 3, 6)
    bars = pd.concat([make_day(DAY, winning_long), make_day(day2, winning_long)])
    r = run_backtest(
        bars, "TEST", Params(risk_pct=1.0, max_trades=1), commission_per_share=0.005, initial_equity=50_000.0
    )
    first, second = r.trades
    assert first.exit_reason == second.exit_reason == "take_profit"
    # 1 % of 50,000 = 500 at risk; box high 100.05 - stop 99.75 = 0.30 a share: 1,666 shares.
    assert first.qty == 1666
    assert first.net_pnl == pytest.approx(1666 * 0.23 - 2 * 1666 * 0.005)
    equity = 50_000.0 + first.net_pnl
    assert second.qty == int(equity * 0.01 // (100.05 - 99.75)) == 1678
    assert r.daily["equity"].iloc[-1] == pytest.approx(equity + second.net_pnl)


def test_risk_pct_too_small_for_one_share_skips_the_breakout() -> None:
    bars = make_day(DAY, {10: (100.0, 100.12, 100.0, 100.10), 11: quiet(100.1, 0.02)})
    r = run_backtest(bars, "TEST", Params(risk_pct=0.01), initial_equity=1_000.0)  # $0.10 at risk
    assert r.trades == []
    assert r.skipped[0] == "2024-03-05 09:41 TEST: buy breakout skipped: 0.01% of equity buys no share"


def test_skipped_breakout_is_reported() -> None:
    # Closing at 100.40, already beyond the take-profit 100.35: Alpaca would reject the bracket.
    bars = make_day(DAY, {10: (100.0, 100.45, 100.0, 100.40), 11: quiet(100.0, 0.02)})
    r = run_backtest(bars, "TEST", P)
    assert r.trades == []
    assert r.skipped and "skipped" in r.skipped[0] and r.skipped[0].startswith("2024-03-05 09:41")


def test_fills_are_unique_and_deterministic() -> None:
    bars = synthetic_bars("SYN", 3, 3)
    a = run_backtest(bars, "SYN", P)
    b = run_backtest(bars, "SYN", P)
    assert a.fills == b.fills
    ids = [f.execution_id for f in a.fills]
    assert len(ids) == len(set(ids))


PARAM_SETS = [
    Params(),
    Params(lookback=5, min_range_pct=0.1, max_trades=3),
    Params(lookback=15, min_range_pct=0.5, no_entry_minutes=60, flatten_minutes=30, max_daily_loss=50.0),
    Params(lookback=3, min_range_pct=0.0, no_entry_minutes=2, flatten_minutes=1),
    Params(risk_pct=0.5, max_daily_loss=300.0),
]


@pytest.mark.parametrize(
    "params",
    PARAM_SETS,
    ids=lambda p: f"lb{p.lookback}-r{p.min_range_pct}" + (f"-risk{p.risk_pct}" if p.risk_pct else ""),
)
def test_fast_path_equals_stepping_every_event(params: Params) -> None:
    bars = synthetic_bars("SYN", 11, 8, dt.date(2015, 12, 21))  # includes the 12-24 half day
    # Holes and a late start / early end, so gaps and the end-of-data rules are exercised.
    rng = np.random.default_rng(5)
    bars = bars[rng.random(len(bars)) > 0.03]
    fast = run_backtest(bars, "SYN", params, slippage_per_share=0.01)
    exact = run_backtest(bars, "SYN", params, slippage_per_share=0.01, exact=True)
    assert fast.fills == exact.fills
    assert fast.trades == exact.trades
    assert fast.skipped == exact.skipped
    assert fast.events < exact.events


def _same_result(a: BacktestResult, b: BacktestResult) -> None:
    assert a.fills == b.fills
    assert a.trades == b.trades
    assert a.daily.equals(b.daily)
    assert (a.skipped, a.warnings, a.events) == (b.skipped, b.warnings, b.events)
    assert (a.bars_processed, a.sessions, a.session_minutes) == (
        b.bars_processed,
        b.sessions,
        b.session_minutes,
    )


@settings(max_examples=12)
@given(cuts=st.lists(st.integers(1, 11), max_size=4, unique=True), exact=st.booleans())
def test_sessions_replayed_apart_assemble_into_one_replay(cuts: list[int], exact: bool) -> None:
    """Sessions are independent (each starts flat, a new day resets the machine's day, order ids name
    their session): runs of sessions replayed from fresh machines, in any order, assemble into the
    replay of them all, fill for fill, the order and execution ids included."""
    bars = _holey_bars()
    replay = ReplayInput.of(
        bars, "SYN", Params(), slippage_per_share=0.01, commission_per_share=0.005, exact=exact
    )
    n = len(replay.sessions)
    edges = [0, *sorted(c for c in cuts if c < n), n]
    runs = list(itertools.pairwise(edges))
    parts = {run: replay_run(replay, run) for run in reversed(runs)}  # later sessions first
    whole = run_backtest(
        bars, "SYN", Params(), slippage_per_share=0.01, commission_per_share=0.005, exact=exact
    )
    _same_result(replay.assemble([parts[run] for run in runs]), whole)


def _holey_bars() -> pd.DataFrame:
    bars = synthetic_bars("SYN", 11, 12, dt.date(2015, 12, 16))  # the 12-24 half day among them
    rng = np.random.default_rng(5)
    return bars[rng.random(len(bars)) > 0.03]


def test_two_processes_give_the_result_of_one() -> None:
    bars = _holey_bars()
    one = run_backtest(bars, "SYN", Params(), slippage_per_share=0.01, commission_per_share=0.005)
    runs = ReplayInput.of(bars, "SYN", Params()).runs(2, min_bars=1_000)
    assert len(runs) == 2  # split in two, about evenly
    two = run_backtest(bars, "SYN", Params(), slippage_per_share=0.01, commission_per_share=0.005, jobs=2)
    _same_result(one, two)
    assert len({f.order_id.split("-")[1] for f in one.fills}) == one.sessions  # ids name their session
    sized = Params(risk_pct=0.5)  # sizes compound from day to day: replayed in one process
    _same_result(run_backtest(bars, "SYN", sized, jobs=2), run_backtest(bars, "SYN", sized))


def test_a_replay_part_travels_between_processes_intact() -> None:
    replay = ReplayInput.of(
        _holey_bars(), "SYN", Params(), slippage_per_share=0.01, commission_per_share=0.005
    )
    part = replay_run(replay, (0, len(replay.sessions)))
    again = pickle.loads(pickle.dumps(part))
    assert again == part and part.trades and part.fills
    assert [repr(f) for f in again.fills] == [repr(f) for f in part.fills]
    assert [repr(t) for t in again.trades] == [repr(t) for t in part.trades]


def test_a_run_leaves_no_cyclic_garbage_and_restores_the_collector() -> None:
    """run_backtest pauses the cycle collector (engine.gc_paused): that is only safe while the
    replay creates no reference cycles, which refcounting alone could not free."""
    bars = synthetic_bars("SYN", 4, 3)
    run_backtest(bars, "SYN", Params())  # imports and caches first
    found = []
    # Another test's thread in this process (a journal's exporter, a server) may make garbage of its own
    # meanwhile: a replay that made cycles would leave some on every attempt.
    for _ in range(3):
        gc.collect()
        gc.disable()
        try:
            result = run_backtest(bars, "SYN", Params(lookback=5, min_range_pct=0.1))
            assert result.trades
            found.append(gc.collect())
        finally:
            gc.enable()
        if found[-1] == 0:
            break
    assert 0 in found, found
    run_backtest(bars, "SYN", Params())
    assert gc.isenabled()


# ------------------------------------------------------------------------------------- real data


def _check_invariants(r_trades: list[Trade], params: Params) -> None:
    cal = xnys()
    for t in r_trades:
        s = cal.session(t.entry_time.date())
        assert s is not None
        assert t.exit_time.date() == t.entry_time.date()  # flat every night
        assert t.entry_time <= s.close_dt - dt.timedelta(minutes=params.no_entry_minutes + 1)
        assert t.exit_time <= s.close_dt - dt.timedelta(minutes=params.flatten_minutes)
    for a, b in itertools.pairwise(r_trades):
        assert a.exit_time <= b.entry_time  # one position at a time


@pytest.mark.skipif(DATA is None, reason="shared minute data not available")
@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("lean_spy_1min.csv", "SPY"),
        ("lean_aapl_1min.csv", "AAPL"),
        ("lean_bac_1min.csv", "BAC"),
        ("lean_goog_1min.csv", "GOOG"),
        ("spy_1min_2025-07_yfinance.csv", "SPY"),
    ],
)
def test_real_files_end_to_end(name: str, symbol: str) -> None:
    assert DATA is not None
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{name} not available")
    bars = load_bars(path)
    for params in (P, Params(min_range_pct=0.1, lookback=5)):
        r = run_backtest(bars, symbol, params, commission_per_share=0.005, slippage_per_share=0.01)
        assert r.sessions >= 3 and r.trades
        _check_invariants(r.trades, params)
        signed = 0
        for f in r.fills:
            signed += int(f.qty) if f.side == "buy" else -int(f.qty)
            assert abs(signed) <= params.qty
        assert signed == 0
        exact = run_backtest(
            bars, symbol, params, commission_per_share=0.005, slippage_per_share=0.01, exact=True
        )
        assert exact.fills == r.fills


@pytest.mark.skipif(DATA is None, reason="shared minute data not available")
def test_goog_half_day_flattens_before_1300() -> None:
    assert DATA is not None
    path = DATA / "lean_goog_1min.csv"
    if not path.exists():
        pytest.skip("GOOG file not available")
    r = run_backtest(load_bars(path), "GOOG", P)
    half = [t for t in r.trades if t.entry_time.date() == dt.date(2015, 12, 24)]
    assert half, "expected a trade on the half day"
    assert all(t.exit_time <= at(dt.date(2015, 12, 24), 12, 55) for t in half)
    flattened = [t for t in half if t.exit_reason == "flatten"]
    assert all(t.exit_time == at(dt.date(2015, 12, 24), 12, 55) for t in flattened)


# ------------------------------------------------------------------------------------- broker


def test_backtest_broker_bracket_lifecycle() -> None:
    from decimal import Decimal

    b = BacktestBroker("X")
    now = at(DAY, 9, 40)
    req = SubmitBracket("X", "buy", 10, Decimal("99"), Decimal("101"), "bb-X-20240305-1")
    (ack,) = b.submit_bracket(req, now)
    assert ack.event is OrderEvent.ACCEPTED and ack.order.legs[0].status is OrderStatus.HELD
    assert [o.client_order_id for o in b.list_open_orders("X")] == ["bb-X-20240305-1"]
    t = int(at(DAY, 9, 41).timestamp())
    (fill,) = b.on_bar(t, 100.0, 100.5, 99.5)
    assert fill.event is OrderEvent.FILL and fill.price == Decimal("100.0") and b.position == 10
    assert b.get_position_qty("X") == 10 and b.busy
    assert b.on_bar(t + 60, 100.0, 100.9, 99.1) == []
    fill2, cancel = b.on_bar(t + 120, 100.0, 101.2, 99.5)
    assert (fill2.event, fill2.price, cancel.event) == (OrderEvent.FILL, Decimal("101"), OrderEvent.CANCELED)
    assert b.position == 0 and not b.busy and b.list_open_orders() == []
    assert len(b.fill_activities(now)) == 2


def test_the_flatten_leaves_no_leg_working() -> None:
    """The close - 5 min flatten cancels the bracket's legs: no fill after it that session, and every
    fill belongs to a round trip. (A flatten that only closed left a take-profit that filled at 15:59,
    opening a position the next flatten closed: the trades missed it, the equity did not.)"""
    bars = synthetic_bars("BBB", 9, 3, start=dt.date(2023, 12, 20))
    result = run_backtest(bars, "BBB", Params(), commission_per_share=0.005)
    flattened = {f.timestamp.date(): f.timestamp for f in result.fills if f.leg == "flatten"}
    assert flattened, "the data holds a position at the flatten"
    assert all(f.timestamp <= flattened.get(f.timestamp.date(), f.timestamp) for f in result.fills)
    assert len(result.fills) == 2 * len(result.trades)
    cash = sum(
        (float(f.qty) * float(f.price)) * (1 if f.side == "sell" else -1) - 0.005 * float(f.qty)
        for f in result.fills
    )
    assert cash == pytest.approx(sum(t.net_pnl for t in result.trades), abs=0.01)


@settings(max_examples=60)
@given(
    minutes=st.lists(st.integers(0, 16 * 24 * 60), min_size=1, max_size=300, unique=True),
)
def test_the_replay_sessions_are_each_bars_new_york_day_within_its_regular_session(
    minutes: list[int],
) -> None:
    """Spans found by walking the calendar's days equal the direct reading: a bar belongs to the session
    of its New York date when it starts in [open, close). Bars at any hour, across the 2024-03-10 DST
    change, a weekend and Good Friday (2024-03-29, no session)."""
    base = int(pd.Timestamp("2024-03-07 00:00", tz="America/New_York").timestamp())
    ns = np.array(sorted(base + 60 * m for m in minutes), dtype=np.int64) * 1_000_000_000
    prices = np.full(len(ns), 10.0)
    replay = ReplayInput.of(BarArrays(ns, prices, prices, prices, prices, prices), "X", Params())
    cal = xnys()
    want: dict[dt.date, list[int]] = {}
    for i, stamp in enumerate(pd.DatetimeIndex(ns, tz="UTC").tz_convert("America/New_York")):
        session = cal.session(stamp.date())
        if session is not None and session.open <= stamp.timestamp() < session.close:
            want.setdefault(stamp.date(), []).append(i)
    got = {day: list(range(a, b)) for day, _, _, a, b in replay.sessions}
    assert got == want
