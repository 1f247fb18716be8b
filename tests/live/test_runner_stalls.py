"""Issue 16 at the runner: a stalled process catches up without trading on old bars, a lost entry is
resolved in bounded time, and the reconcile's position read does not double a fill the stream reports
after it. The fake broker and the stepped clock of tests/live/test_runner.py."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from decimal import Decimal
from pathlib import Path

import pytest

from breakout_bot.broker.base import AccountInfo, SubmitOutcome
from breakout_bot.core.events import SubmitBracket
from breakout_bot.core.params import Params
from breakout_bot.core.state import Phase
from breakout_bot.errors import BrokerUnavailable
from breakout_bot.live.runner import Runner, RunnerOptions, RunnerStatus
from breakout_bot.testkit.fakes import FakeBroker

from .test_runner import BREAKOUT, CID, SYMBOL, at, day, runner, world


def _phases(r: Runner) -> list[tuple[dt.datetime, Phase]]:
    seen: list[tuple[dt.datetime, Phase]] = []

    def watch(status: RunnerStatus) -> None:
        phase = status.states[0].phase
        if not seen or seen[-1][1] is not phase:
            seen.append((status.now, phase))

    r.observe(watch)
    return seen


def _stall_at(broker: FakeBroker, when: str, until: str) -> None:
    """The process is suspended at `when` (its first bar read after it) and resumed at `until`."""
    real = broker.get_bars_multi
    stalled: list[bool] = []

    def get_bars_multi(symbols: list[str], start: dt.datetime, end: dt.datetime) -> dict:  # type: ignore[type-arg]
        if not stalled and broker.clock.now() >= at(when):
            stalled.append(True)
            broker.clock.reached(at(until))
        return real(symbols, start, end)

    broker.get_bars_multi = get_bars_multi  # type: ignore[method-assign]


def test_after_a_stall_into_the_no_entry_window_the_backlog_is_not_traded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's run: suspended 15:34:54, resumed 15:46:17; the 15:37 bar broke out."""
    broker, journal = world(tmp_path, day({"15:37": BREAKOUT}))
    _stall_at(broker, "15:35:02", "15:46:17")
    # No reconcile falls due on resuming (one would tell the machine the time before the bars).
    options = RunnerOptions(days=1, reconcile_every=dt.timedelta(hours=8))
    r = Runner(broker, broker, broker.clock, journal, [SYMBOL], Params(), options)
    phases = _phases(r)
    with caplog.at_level(logging.INFO):
        assert r.run() == 0
    assert "submit_bracket" not in broker.calls
    assert Phase.ORDER_SENT not in [p for _, p in phases]  # not even decided (then refused)


def test_a_stale_breakout_mid_day_is_not_traded_and_a_fresh_one_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker, journal = world(tmp_path, day({"11:03": BREAKOUT, "11:12": BREAKOUT}, after="11:13"))
    _stall_at(broker, "11:01:02", "11:09:40")
    r = runner(broker, journal)
    with caplog.at_level(logging.INFO):
        assert r.run() == 0
    assert "AAPL: stale signal: 11:03 bar is 6 min old; not trading it" in caplog.messages
    entry = broker.engine.get_order_by_client_id(CID)
    assert broker.calls.count("submit_bracket") == 1 and entry is not None
    assert entry.filled_qty == 100  # the 11:12 bar's entry, sent at 11:13:02


def test_an_entry_decided_before_a_stall_is_not_sent_after_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The stall hits between the decision and the POST (here: the risk gate's account read)."""
    broker, journal = world(tmp_path, day({"10:00": BREAKOUT}, after="10:01"))
    real = broker.get_account
    reads: list[dt.datetime] = []

    def get_account() -> AccountInfo:
        if at("10:01") <= broker.clock.now() < at("10:02"):
            reads.append(broker.clock.now())
            if len(reads) == 1:  # the minute's prefetch fails, so the entry's gate reads it again ...
                raise BrokerUnavailable("GET /v2/account: 503")
            broker.clock.reached(at("10:04"))  # ... and the process is suspended inside that read
        return real()

    broker.get_account = get_account  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO):
        assert runner(broker, journal).run() == 0
    assert len(reads) == 2 and "submit_bracket" not in broker.calls
    assert "AAPL: entry bb-AAPL-20240305-1 not sent: its signal is 180 s old" in caplog.messages


# ---------------------------------------------------------------- a lost entry


def test_a_lost_entry_is_given_up_in_bounded_time_and_its_number_reused(tmp_path: Path) -> None:
    """Both POSTs reset before reaching the broker, the lookups find nothing: the day goes on."""
    higher = (100.0, 101.0, 99.9, 100.9)  # above the next box, which holds the 10:00 bar
    broker, journal = world(tmp_path, day({"10:00": BREAKOUT, "10:20": higher}, after="10:21"))
    real = broker.submit_bracket
    sent: list[str] = []

    def submit_bracket(order: SubmitBracket) -> SubmitOutcome:
        sent.append(order.client_order_id)
        if len(sent) == 1:
            broker.calls.append("submit_bracket")
            return SubmitOutcome("unknown", None, "connection reset; lookup: not found")
        return real(order)

    broker.submit_bracket = submit_bracket  # type: ignore[method-assign]
    r = runner(broker, journal)
    phases = _phases(r)
    assert r.run() == 0
    assert sent == [CID, CID]  # the second entry carries the lost one's id: never two at the broker
    spans = [(t, nxt - t) for (t, p), (nxt, _) in itertools.pairwise(phases) if p is Phase.ORDER_SENT]
    assert spans and all(span <= dt.timedelta(minutes=3) for _, span in spans), spans
    assert "get_order_by_client_id" in broker.calls
    entry = broker.engine.get_order_by_client_id(CID)
    assert entry is not None and entry.filled_qty == 100


def test_an_entry_whose_answer_was_lost_is_found_and_adopted(tmp_path: Path) -> None:
    broker, journal = world(tmp_path, day({"10:00": BREAKOUT}, after="10:01"))
    real = broker.submit_bracket

    def submit_bracket(order: SubmitBracket) -> SubmitOutcome:
        real(order)  # it arrived; the answer did not
        return SubmitOutcome("unknown", None, "read timed out; lookup failed")

    broker.submit_bracket = submit_bracket  # type: ignore[method-assign]
    broker.fail["list_orders_since"] = (BrokerUnavailable("GET /v2/orders: 503"), 1)  # the reconcile fails
    assert runner(broker, journal).run() == 0
    assert broker.calls.count("submit_bracket") == 1
    assert [r.leg for r in journal.records()] == ["entry", "flatten"]


# ---------------------------------------------------------------- the reconcile's snapshot


def test_the_reconcile_race_does_not_double_the_position(tmp_path: Path) -> None:
    """The reconcile reads the fills (none), the entry fills, the position read returns 100: the
    stream's fill, queued meanwhile, must not make it 200 (issue 16)."""
    broker, journal = world(tmp_path, day({"10:00": BREAKOUT}, after="10:01"))
    real = broker.list_positions
    raced: list[Decimal] = []

    def list_positions() -> dict[str, Decimal]:
        if not raced and at("10:01:30") <= broker.clock.now() < at("10:02"):
            broker.clock.reached(at("10:02"))  # the entry fills now; its stream message is queued
            raced.append(real()[SYMBOL])
            return real()
        return real()

    broker.list_positions = list_positions  # type: ignore[method-assign]
    held: list[Decimal] = []
    # A reconcile falls due at 10:01:30 (09:25 + 36.5 min), 28 s after the entry went out.
    r = Runner(
        broker, broker, broker.clock, journal, [SYMBOL], Params(),
        RunnerOptions(days=1, reconcile_every=dt.timedelta(seconds=2190)),
    )  # fmt: skip
    r.observe(lambda status: held.append(status.states[0].position_qty))
    assert r.run() == 0
    assert raced == [Decimal(100)]
    assert max(held) == 100, sorted(set(held))
    records = journal.records()
    assert [x.leg for x in records] == ["entry", "flatten"] and records[0].source == "stream"


def test_a_minute_poll_that_sees_an_unreported_exit_does_not_count_it_twice(tmp_path: Path) -> None:
    """The same race in the minute's position poll: the fills read, the stop fills, the position read
    says flat; the stream's stop fill, queued, must not leave the bot believing it is short 100."""
    touch_stop = (100.0, 100.1, 99.4, 99.6)  # the long's stop is 99.50
    broker, journal = world(tmp_path, day({"10:00": BREAKOUT, "10:30": touch_stop}, after="10:01"))
    real = broker.fill_activities
    raced: list[bool] = []

    def fill_activities(since: dt.datetime) -> list:  # type: ignore[type-arg]
        activities = real(since)
        if not raced and at("10:30:02") <= broker.clock.now() < at("10:31"):
            raced.append(True)
            broker.clock.reached(at("10:31"))  # the next call trades the 10:30 bar: the stop fills
        return activities

    broker.fill_activities = fill_activities  # type: ignore[method-assign]
    held: list[Decimal] = []
    r = runner(broker, journal)
    r.observe(lambda status: held.append(status.states[0].position_qty))
    assert r.run() == 0
    assert raced and min(held) == 0 and max(held) == 100, sorted(set(held))
    assert [x.leg for x in journal.records()] == ["entry", "stop_loss"]
    assert "list_orders_since" in broker.calls[broker.calls.index("list_positions", 40) :]
