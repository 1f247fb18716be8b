"""A backtest is a rehearsal of the live bot: on the same bars, the bot trading the simulator (REST,
websocket, runner, journal) and `breakout-bot backtest` make the same fills, minute for minute and
cent for cent. The one documented difference (a bar that touches both legs: the simulator's tape
takes the leg its path reaches first, the backtest the stop) does not occur on these days."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sdk_choice import TEST_SDK
from shared_data import shared_minute_file

from breakout_bot.backtest.engine import run_backtest
from breakout_bot.broker.sdks import SDKS, installed
from breakout_bot.broker.timestamps import parse_time
from breakout_bot.cli.commands.run import simulated_session
from breakout_bot.core.params import Params
from breakout_bot.journal import Journal
from breakout_bot.live.runner import Runner, RunnerOptions
from breakout_bot.market.bars import load_bars
from breakout_bot.market.synthetic import synthetic_bars

from .harness import NEW_YORK

SPY_2025 = shared_minute_file("spy_1min_2025-07_yfinance.csv")

Fill = tuple[str, str, Decimal, Decimal, str]  # leg, side, qty, price, minute (New York)


def _minute(t: dt.datetime) -> str:
    return t.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M")


def _live(
    tmp_path: Path, symbol: str, day: dt.date, seed: int = 7, data: Path | None = None, sdk: str = TEST_SDK
) -> list[Fill]:
    journal = Journal(tmp_path / "past_trades.json")
    journal.load()
    # The consolidated feed: the backtest replays the same (SIP) bars.
    with simulated_session([symbol], start=day, seed=seed, data=data, feed="sip", sdk=sdk) as (
        broker,
        clock,
        _,
    ):
        assert (
            Runner(
                broker, broker.market_data, clock, journal, [symbol], Params(), RunnerOptions(days=1)
            ).run()
            == 0
        )
    return [
        (r.leg, r.side, Decimal(r.qty), Decimal(r.price), _minute(parse_time(r.timestamp)))
        for r in journal.records()
    ]


def _backtest(bars, symbol: str) -> list[Fill]:  # type: ignore[no-untyped-def]
    result = run_backtest(bars, symbol, Params())
    return [(f.leg, f.side, f.qty, f.price, _minute(f.timestamp)) for f in result.fills]


@pytest.mark.parametrize(
    ("day", "seed"),
    [
        (dt.date(2024, 3, 5), 3),  # the 09:54 breakout bar closes as the 15-minute reconcile runs
        (dt.date(2024, 7, 3), 5),  # an early close (13:00): the flatten at 12:55
    ],
    ids=["reconcile-on-the-breakout-minute", "early-close"],
)
def test_live_and_backtest_fill_alike_on_synthetic_days(tmp_path: Path, day: dt.date, seed: int) -> None:
    live = _live(tmp_path, "AAPL", day, seed)
    assert live, "a day without trades proves nothing"
    assert live == _backtest(synthetic_bars("AAPL", seed, 1, day), "AAPL")


@pytest.mark.skipif(not all(installed(s) for s in SDKS), reason="needs both SDKs")
def test_the_bot_fills_alike_on_both_sdks(tmp_path: Path) -> None:
    """One synthetic day, the whole bot (REST, trade_updates, journal) on each SDK: the same fills."""
    day = dt.date(2024, 3, 5)
    fills = {}
    for sdk in SDKS:
        (tmp_path / sdk).mkdir()
        fills[sdk] = _live(tmp_path / sdk, "AAPL", day, 3, sdk=sdk)
    assert fills["alpaca-trade-api"] and fills["alpaca-py"] == fills["alpaca-trade-api"]
    assert fills["alpaca-py"] == _backtest(synthetic_bars("AAPL", 3, 1, day), "AAPL")


@pytest.mark.skipif(SPY_2025 is None, reason="shared minute data not available")
def test_live_and_backtest_fill_alike_on_a_real_day_with_gaps(tmp_path: Path) -> None:
    """Yahoo bars of SPY on 2025-07-10: 383 of 390 minutes (gaps), float noise in the prices."""
    assert SPY_2025 is not None
    day = dt.date(2025, 7, 10)
    live = _live(tmp_path, "SPY", day, data=SPY_2025)
    assert live
    assert live == _backtest(load_bars(SPY_2025, "SPY", start=day, end=day), "SPY")
