"""Run the real bot (Runner + AlpacaBroker + Journal) against the in-process simulator on scenario data.

Scenario data is a CSV of one-minute bars for one trading day: quiet bars everywhere, with designed bars
where a scenario wants a breakout. The simulator runs stepped (speed 0): virtual time moves only when the
bot waits, so a whole session takes a few wall seconds.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sdk_choice import TEST_SDK

from breakout_bot.broker.alpaca.broker import AlpacaBroker
from breakout_bot.cli.commands.run import simulated_session
from breakout_bot.core.ids import parse_client_order_id
from breakout_bot.core.params import Params
from breakout_bot.journal import Journal, read_journal
from breakout_bot.live.clock import SimulatorClock
from breakout_bot.live.runner import Runner, RunnerOptions
from breakout_bot.sim import SimServer
from breakout_bot.sim.models import TERMINAL, Order
from breakout_bot.testkit.crash import stop_when as crash_when

NEW_YORK = ZoneInfo("America/New_York")
DAY = dt.date(2024, 3, 4)  # a Monday, regular session 09:30-16:00
SYMBOL = "AAPL"

OHLC = tuple[float, float, float, float]
QUIET: OHLC = (100.0, 100.5, 99.5, 100.0)  # the default bar: a 1.00 range around 100, close 100


def hm(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


def write_day(
    path: Path,
    bars: Mapping[str, OHLC] | None = None,
    base: OHLC = QUIET,
    day: dt.date = DAY,
    after: Mapping[str, OHLC] | None = None,
) -> Path:
    """One row per minute 09:30..15:59 (naive New York times). `bars` overrides single minutes ("10:00");
    `after` sets the bar used from that minute on (until the next `after` key), before `bars` overrides."""
    rows = ["timestamp,open,high,low,close,volume"]
    t = dt.datetime.combine(day, hm("09:30"))
    end = dt.datetime.combine(day, hm("16:00"))
    regime = base
    changes = {hm(k): v for k, v in (after or {}).items()}
    overrides = {hm(k): v for k, v in (bars or {}).items()}
    while t < end:
        regime = changes.get(t.time(), regime)
        o, h, lo, c = overrides.get(t.time(), regime)
        assert lo <= min(o, c) and h >= max(o, c), (t, o, h, lo, c)
        rows.append(f"{t:%Y-%m-%d %H:%M:%S},{o},{h},{lo},{c},4000")
        t += dt.timedelta(minutes=1)
    path.write_text("\n".join(rows) + "\n")
    return path


def ny(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, NEW_YORK)


@dataclass
class Session:
    """One simulated world plus the bot's wiring to it."""

    server: SimServer
    broker: AlpacaBroker
    clock: SimulatorClock
    journal_path: Path
    params: Params = field(default_factory=Params)
    runners: list[Runner] = field(default_factory=list)

    def runner(
        self,
        stop_when: Callable[[Runner], bool] | None = None,
        journal: Journal | None = None,
        **options: Any,
    ) -> Runner:
        journal = journal or Journal(self.journal_path)
        journal.load()
        runner = Runner(
            self.broker,
            self.broker.market_data,
            self.clock,
            journal,
            [SYMBOL],
            self.params,
            RunnerOptions(days=1, **options),
        )
        if stop_when is not None:
            crash_when(runner, stop_when)
        self.runners.append(runner)
        return runner

    def run(self, stop_when: Callable[[Runner], bool] | None = None, **options: Any) -> Runner:
        runner = self.runner(stop_when, **options)
        assert runner.run() == 0
        return runner

    # -- the simulator's own records --------------------------------------------------------------
    @property
    def orders(self) -> list[Order]:
        return sorted(self.server.exchange.orders.values(), key=lambda o: o.seq)

    def entries(self) -> list[Order]:
        return [o for o in self.orders if parse_client_order_id(o.client_order_id) is not None]

    def legs(self, entry: Order) -> dict[str, Order]:
        """{"take_profit": limit leg, "stop_loss": stop leg} of a bracket entry."""
        out = {}
        for leg_id in entry.legs:
            leg = self.server.exchange.orders[leg_id]
            out["take_profit" if leg.type == "limit" else "stop_loss"] = leg
        return out

    def journal(self) -> list[dict[str, Any]]:
        """What the journal holds: its ledger (past_trades.json, the export, follows a moment later)."""
        return [r.to_dict() for r in read_journal(self.journal_path)]

    def position(self, symbol: str = SYMBOL) -> int:
        pos = self.server.exchange.positions.get(symbol)
        return 0 if pos is None else pos.qty

    def check_invariants(self) -> None:
        """What every scenario asserts: one entry at a time, each execution journaled once, flat at the end."""
        engine = self.server.exchange
        # each sim execution exactly once in the journal, and nothing else there
        journal = self.journal()
        ids = [r["id"] for r in journal]
        assert len(ids) == len(set(ids)), f"duplicate journal ids: {ids}"
        executions = {e.execution_id: e for e in engine.executions}
        assert set(ids) == set(executions), f"journal {sorted(ids)} != sim executions {sorted(executions)}"
        for record in journal:
            e = executions[record["id"]]
            assert (record["order_id"], record["side"], int(float(record["qty"]))) == (
                e.order_id,
                e.side,
                e.qty,
            )
            assert abs(float(record["price"]) - e.price) < 1e-6
        # flat at the end, no working orders left
        assert all(p.qty == 0 for p in engine.positions.values()), engine.positions
        assert not [o for o in engine.orders.values() if o.status not in TERMINAL and o.status != "held"]
        # never two open entries at once: an entry is only sent when flat and the previous one is over
        by_symbol: dict[str, list[Order]] = defaultdict(list)
        for o in self.entries():
            by_symbol[o.symbol].append(o)
        for symbol, entries in by_symbol.items():
            for prev, nxt in itertools.pairwise(entries):
                done = [t for t in (prev.filled_at, prev.canceled_at, prev.expired_at, prev.failed_at) if t]
                assert done and max(done) <= nxt.created_at, (
                    f"{nxt.client_order_id} sent while {prev.client_order_id} open"
                )
            for entry in entries:
                qty = sum(
                    (e.qty if e.side == "buy" else -e.qty)
                    for e in engine.executions
                    if e.symbol == symbol and e.time <= entry.created_at
                )
                assert qty == 0, f"{entry.client_order_id} sent at {ny(entry.created_at)} while holding {qty}"

    def max_requests_per_minute(self) -> int:
        times = sorted(r.t for r in self.server.exchange.requests)
        worst, lo = 0, 0
        for hi, t in enumerate(times):
            while times[lo] <= t - 60:
                lo += 1
            worst = max(worst, hi - lo + 1)
        return worst


@contextmanager
def session(
    tmp_path: Path,
    bars: Mapping[str, OHLC] | None = None,
    *,
    base: OHLC = QUIET,
    after: Mapping[str, OHLC] | None = None,
    partial_fills: bool = False,
    params: Params | None = None,
    feed: str = "sip",
) -> Iterator[Session]:
    """The scenario's bars on the consolidated feed by default (the designed prices exactly; `feed="iex"`
    serves the simulator's thinner IEX view of them)."""
    data = write_day(tmp_path / "bars.csv", bars, base=base, after=after)
    with simulated_session(
        [SYMBOL], start=DAY, speed=0.0, data=data, partial_fills=partial_fills, sdk=TEST_SDK, feed=feed
    ) as (
        broker,
        clock,
        server,
    ):
        yield Session(server, broker, clock, tmp_path / "past_trades.json", params or Params())
