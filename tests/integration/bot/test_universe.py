"""A universe in one process: the bot's REST cost per minute does not grow with the number of symbols
(issue 22: one multi-symbol bars read, one positions read, one activities read a minute)."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

from sdk_choice import TEST_SDK

from breakout_bot.cli.commands.run import simulated_session
from breakout_bot.core.ids import parse_client_order_id
from breakout_bot.core.params import Params
from breakout_bot.journal import Journal
from breakout_bot.live.runner import Runner, RunnerOptions
from breakout_bot.sim.exchange import RequestRecord

from .harness import DAY


def one_session(tmp_path: Path, n_symbols: int) -> tuple[list[RequestRecord], int]:
    """One simulated session of `n_symbols` synthetic symbols: the bot's requests and its entries."""
    symbols = [f"U{i:03d}" for i in range(n_symbols)]
    with simulated_session(symbols, start=DAY, sdk=TEST_SDK) as (broker, clock, server):
        journal = Journal(tmp_path / f"trades-{n_symbols}.json")
        runner = Runner(broker, broker.market_data, clock, journal, symbols, Params(), RunnerOptions(days=1))
        assert runner.run() == 0
        entries = sum(1 for o in server.exchange.orders.values() if parse_client_order_id(o.client_order_id))
        return list(server.exchange.requests), entries


def per_minute(requests: list[RequestRecord]) -> list[int]:
    return sorted(Counter(int(r.t // 60) for r in requests).values())


def reads(requests: list[RequestRecord]) -> list[RequestRecord]:
    """The polling reads: not the orders' own traffic (submits, cancels, order lookups, the flatten)."""
    return [r for r in requests if r.method == "GET" and not r.path.startswith("/v2/orders")]


def test_the_request_rate_does_not_grow_with_the_universe(tmp_path: Path) -> None:
    few, _ = one_session(tmp_path, 2)
    many, entries = one_session(tmp_path, 40)
    assert entries > 40  # the universe traded: the orders' own requests are in the counts
    assert statistics.median(per_minute(many)) <= 10, per_minute(many)
    assert statistics.median(per_minute(reads(many))) <= statistics.median(per_minute(reads(few))) + 1
    # The minute's reads are one request each, whatever the universe (plus the reconciles' reads).
    bars = [r for r in many if r.path == "/v2/stocks/bars"]
    assert max(per_minute(bars)) <= 2 and len(bars) <= 390 + 30  # the poll, a reconcile's history
    positions = [r for r in many if r.method == "GET" and r.path == "/v2/positions"]
    assert max(per_minute(positions)) <= 3  # the poll, a reconcile's reads
    paths = Counter(r.path for r in many)
    assert not [p for p in paths if p.startswith("/v2/stocks/U")]  # no per-symbol bars read
