"""Portfolio rules, live and backtest alike (issue 22): twenty symbols with --max-positions 3 on one
simulated session make the same fills in the bot trading the simulator and in the lockstep backtest,
and a breakout beyond the limit is skipped in both, with its log line."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from sdk_choice import TEST_SDK

from breakout_bot.backtest.portfolio import run_portfolio
from breakout_bot.broker.timestamps import parse_time
from breakout_bot.cli.commands.run import simulated_session
from breakout_bot.core.params import Params
from breakout_bot.journal import Journal
from breakout_bot.live.runner import Runner, RunnerOptions
from breakout_bot.market.synthetic import synthetic_bars

from .harness import NEW_YORK

DAY = dt.date(2024, 3, 5)
SEED = 3
SYMBOLS = [f"P{i:02d}" for i in range(20)]
# Small trades: buying power never binds (the backtest has none), the position limit does.
PARAMS = Params(qty=10, max_positions=3)

Fill = tuple[str, str, str, Decimal, Decimal, str]  # symbol, leg, side, qty, price, minute


def _minute(t: dt.datetime) -> str:
    return t.astimezone(NEW_YORK).strftime("%H:%M")


def live(tmp_path: Path, symbols: list[str] = SYMBOLS, bars_stream: bool = False) -> list[Fill]:
    journal = Journal(tmp_path / "past_trades.json")
    journal.load()
    with simulated_session(symbols, start=DAY, seed=SEED, feed="sip", sdk=TEST_SDK) as (broker, clock, _):
        options = RunnerOptions(days=1, bars_stream=bars_stream)
        runner = Runner(broker, broker.market_data, clock, journal, symbols, PARAMS, options)
        assert runner.run() == 0
    return sorted(
        (r.symbol, r.leg, r.side, Decimal(r.qty), Decimal(r.price), _minute(parse_time(r.timestamp)))
        for r in journal.records()
    )


def backtest(params: Params, symbols: list[str] = SYMBOLS) -> tuple[list[Fill], list[str]]:
    bars: dict[str, pd.DataFrame] = {s: synthetic_bars(s, SEED, 1, DAY) for s in symbols}
    result = run_portfolio(bars, params)
    fills = sorted(
        (s, f.leg, f.side, f.qty, f.price, _minute(f.timestamp))
        for s, r in result.results.items()
        for f in r.fills
    )
    warnings = [w for r in result.results.values() for w in r.warnings]
    return fills, warnings


def open_at_once(fills: list[Fill]) -> int:
    """The most symbols holding a position at once, from the fills (minute resolution)."""
    events = sorted((minute, 0 if leg != "entry" else 1, symbol) for symbol, leg, _, _, _, minute in fills)
    held: set[str] = set()
    worst = 0
    for _, is_entry, symbol in events:
        if is_entry:
            held.add(symbol)
        else:
            held.discard(symbol)
        worst = max(worst, len(held))
    return worst


def test_max_positions_live_and_backtest_decide_alike(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unlimited, _ = backtest(Params(qty=10))
    limited, warnings = backtest(PARAMS)
    assert open_at_once(unlimited) > 3  # the limit has work to do on this day
    assert open_at_once(limited) <= 3
    assert any("max positions 3 reached" in w for w in warnings)
    with caplog.at_level(logging.WARNING):
        bot = live(tmp_path)
    assert bot == limited
    assert any("max positions 3 reached" in r.getMessage() for r in caplog.records)
    assert Counter(f[1] for f in bot)["entry"] >= 5


def test_streamed_bars_are_served_in_the_symbols_order(tmp_path: Path) -> None:
    """`--bars stream` with --max-positions: the websocket delivers a minute's bars in its own order
    (the simulator's: sorted); the bot serves them in the order given, as the backtest does. Given in
    reverse, the contested slots go to the last symbols by name."""
    backwards = SYMBOLS[::-1]
    expected, _ = backtest(PARAMS, backwards)
    assert expected != backtest(PARAMS)[0]  # the order decides some slots on this day
    assert live(tmp_path, backwards, bars_stream=True) == expected
