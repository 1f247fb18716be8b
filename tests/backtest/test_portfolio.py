"""Many symbols on one account: each symbol's trades are its single-symbol backtest's (its own machine,
as in a live multi-symbol run), whichever way the symbols are run; with --risk-pct the account's equity
(every symbol's P&L) sizes each of them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest

from breakout_bot.backtest.engine import run_backtest
from breakout_bot.backtest.parallel import ForkExecutor
from breakout_bot.backtest.portfolio import merge_steps, run_portfolio
from breakout_bot.core.params import Params
from breakout_bot.core.strategy import position_size
from breakout_bot.market.synthetic import synthetic_bars

SYMBOLS = ("AAA", "BBB", "CCC")


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """Three symbols over a year boundary (tasks are cut at years), with a hole in one of them."""
    out = {s: synthetic_bars(s, 9, 12, start=dt.date(2023, 12, 20)) for s in SYMBOLS}
    bbb = out["BBB"]
    out["BBB"] = bbb[bbb.index.date != dt.date(2024, 1, 3)]
    return out


def test_each_symbol_trades_as_its_single_symbol_backtest(frames: dict[str, pd.DataFrame]) -> None:
    costs = {"commission_per_share": 0.005, "slippage_per_share": 0.01}
    singles = {s: run_backtest(f, s, Params(), **costs) for s, f in frames.items()}
    for how in ({}, {"executor": ForkExecutor(2)}, {"lockstep": True}):
        portfolio = run_portfolio(frames, Params(), **costs, **how)  # type: ignore[arg-type]
        assert portfolio.symbols == list(SYMBOLS)
        for s, single in singles.items():
            got = portfolio.results[s]
            assert got.trades == single.trades and got.fills == single.fills, how
            assert got.skipped == single.skipped and got.daily.equals(single.daily)
        assert portfolio.lockstep == bool(how.get("lockstep"))
        everyone = sorted(
            (t for r in singles.values() for t in r.trades),
            key=lambda t: (t.entry_time, SYMBOLS.index(t.symbol)),
        )
        assert portfolio.trades == everyone
    m = portfolio.metrics()
    assert m.trades == sum(len(r.trades) for r in singles.values())
    assert m.net_pnl == pytest.approx(sum(t.net_pnl for r in singles.values() for t in r.trades))
    daily = portfolio.daily.set_index("date")["pnl"]
    assert daily.sum() == pytest.approx(m.net_pnl)
    assert len(daily) == len({d for r in singles.values() for d in r.daily["date"]})


def test_exposure_is_the_time_with_any_position_open(frames: dict[str, pd.DataFrame]) -> None:
    portfolio = run_portfolio(frames, Params())
    minute = pd.Timedelta(minutes=1)
    held: set[pd.Timestamp] = set()
    for t in portfolio.trades:
        stamp = pd.Timestamp(t.entry_time)
        while stamp < pd.Timestamp(t.exit_time):
            held.add(stamp)
            stamp += minute
    assert portfolio.exposure == pytest.approx(len(held) / portfolio.session_minutes)
    per_symbol = sum(
        m.exposure * portfolio.results[s].session_minutes for s, m in portfolio.symbol_metrics().items()
    )
    assert len(held) < per_symbol  # positions overlap across symbols: the union is less than the sum


def test_risk_pct_sizes_every_symbol_on_the_accounts_equity(frames: dict[str, pd.DataFrame]) -> None:
    params = Params(risk_pct=0.5)
    portfolio = run_portfolio(frames, params, commission_per_share=0.005, initial_equity=50_000.0)
    assert portfolio.lockstep
    trades = portfolio.trades
    assert trades
    for t in trades:
        day = t.entry_time.date()
        equity = 50_000.0 + sum(u.net_pnl for u in trades if u.exit_time.date() < day)
        level = t.box_high if t.side == "buy" else t.box_low
        assert t.qty == position_size(100, 0.5, equity, level, Decimal(str(t.stop_price)))
    single = run_backtest(frames["AAA"], "AAA", params, commission_per_share=0.005, initial_equity=50_000.0)
    assert [t.qty for t in single.trades] != [t.qty for t in portfolio.results["AAA"].trades]


def test_steps_merge_in_key_order_ties_in_symbol_order() -> None:
    log: list[tuple[str, int]] = []

    def gen(name: str, keys: list[int]):  # type: ignore[no-untyped-def]
        for k in keys:
            yield k
            log.append((name, k))  # the step itself, taken after the yield

    seen: list[tuple[int, int]] = []
    keys = list(
        merge_steps(
            [gen("a", [1, 4, 4, 9]), gen("b", [0, 4, 5]), gen("c", [])], lambda i, k: seen.append((i, k))
        )
    )
    assert keys == [0, 1, 4, 4, 4, 5, 9]
    assert log == [("b", 0), ("a", 1), ("a", 4), ("a", 4), ("b", 4), ("b", 5), ("a", 9)]
    assert seen == [(1, 0), (0, 1), (0, 4), (0, 4), (1, 4), (1, 5), (0, 9)]
