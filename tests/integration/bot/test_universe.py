"""A universe in one process: the bot's REST cost per minute does not grow with the number of symbols
(issue 22: one multi-symbol bars read, one positions read, one activities read a minute; at the flatten,
one read of the open orders and positions for every symbol; at the start, one read of the assets)."""

from __future__ import annotations

import datetime as dt
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

from .harness import DAY, NEW_YORK

FLATTEN_MINUTE = int(dt.datetime.combine(DAY, dt.time(15, 55), NEW_YORK).timestamp() // 60)


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


def in_minute(requests: list[RequestRecord], minute: int) -> list[RequestRecord]:
    return [r for r in requests if int(r.t // 60) == minute]


def test_the_request_rate_does_not_grow_with_the_universe(tmp_path: Path) -> None:
    few, _ = one_session(tmp_path, 2)
    many, entries = one_session(tmp_path, 40)
    # The flatten minute (the 2-symbol run is over by then: both done for the day and flat): one
    # shared read of the open orders (nested, flat) and the positions serves every symbol's cancel and
    # close (live/shared_read.py), beside the minute's own reads and the exit's settling (the fills and
    # the positions read every few seconds until flat). Read per symbol, the 40 symbols' cancels and
    # closes alone took 2 requests each and 4 for each position.
    flatten = in_minute(many, FLATTEN_MINUTE)
    reads_then = [r for r in flatten if r.method == "GET"]
    writes = [r for r in flatten if r.method != "GET"]
    assert len(reads_then) <= 24, Counter(r.path for r in reads_then)
    assert sum(1 for r in reads_then if r.path == "/v2/orders") <= 8
    assert [r for r in writes if r.method == "PATCH"], "no position open at the flatten"
    assert len({r.path for r in writes}) == len(writes)  # each order written once: no cancel-and-close
    # The start: one read of the assets for the universe (its reconcile's shortability), not one a symbol.
    assert not [r for r in many if r.path.startswith("/v2/assets/")]
    assert sum(1 for r in many if r.path == "/v2/assets") == 1
    assert max(Counter(int(r.t // 60) for r in many).values()) < 100  # no minute near Alpaca's 200
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
