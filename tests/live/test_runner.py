"""The runner alone: a fake broker (testkit/fakes.py, the backtest's broker as its matching engine)
and a stepped clock, no server and no threads. What it owns: time, the queue, the order of reads, and
handing the machine's actions to the executor."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pytest

from breakout_bot.core.model import NEW_YORK, Bar, OrderSnapshot, OrderStatus, OrderType, Session
from breakout_bot.core.params import Params
from breakout_bot.core.state import Phase
from breakout_bot.errors import BrokerAuthError, BrokerUnavailable
from breakout_bot.journal import Journal
from breakout_bot.live.halt import engage, halt_path
from breakout_bot.live.runner import Runner, RunnerOptions, RunnerStatus
from breakout_bot.testkit.fakes import FakeBroker, SteppedClock

DAY = dt.date(2024, 3, 5)
SYMBOL = "AAPL"
QUIET = (100.0, 100.5, 99.5, 100.0)  # the box: 99.50-100.50, range 1.00
INSIDE = (100.0, 100.4, 99.8, 100.1)  # touches neither leg of the long bracket (stop 99.50, tp 101.50)
BREAKOUT = (100.0, 100.7, 99.9, 100.6)  # closes above the box
CID = "bb-AAPL-20240305-1"


def at(hhmm: str) -> dt.datetime:
    return dt.datetime.combine(DAY, dt.time.fromisoformat(hhmm), NEW_YORK)


SESSION = Session(DAY, at("09:30"), at("16:00"))


def day(
    overrides: Mapping[str, tuple[float, float, float, float]] = {}, after: str | None = None
) -> list[Bar]:
    """One bar per session minute: QUIET, INSIDE from `after` on, `overrides` by minute."""
    bars = []
    t = SESSION.open
    while t < SESSION.close:
        key = f"{t:%H:%M}"
        ohlc = overrides.get(key, INSIDE if after is not None and key >= after else QUIET)
        bars.append(Bar(t, *ohlc, volume=1000))
        t += dt.timedelta(minutes=1)
    return bars


def world(tmp_path: Path, bars: list[Bar], start: str = "09:25") -> tuple[FakeBroker, Journal]:
    broker = FakeBroker(SYMBOL, SESSION, bars, SteppedClock(at(start)))
    journal = Journal(tmp_path / "past_trades.json")
    journal.load()
    return broker, journal


def runner(broker: FakeBroker, journal: Journal, params: Params | None = None) -> Runner:
    return Runner(broker, broker, broker.clock, journal, [SYMBOL], params or Params(), RunnerOptions(days=1))


def test_it_reconciles_before_anything_else(tmp_path: Path) -> None:
    broker, journal = world(tmp_path, day())
    assert runner(broker, journal).run() == 0
    calls = [c for c in broker.calls if c != "stream_trade_updates"]
    # The market, today's fills, the order book, then the symbol's position: before any bar is read.
    assert calls[:6] == [
        "get_clock",
        "get_sessions",
        "fill_activities",
        "list_open_orders",
        "list_orders_since",
        "list_positions",
    ]
    assert "submit_bracket" not in calls  # a quiet day: no breakout
    assert at("15:40") <= broker.clock.now() < at("15:41")  # done at the no-entry window, flat: it exits


def test_a_breakout_trades_one_bracket_and_journals_each_fill_once(tmp_path: Path) -> None:
    broker, journal = world(tmp_path, day({"10:00": BREAKOUT}, after="10:01"))
    phases: list[Phase] = []
    r = runner(broker, journal)
    r.observe(lambda status: phases.append(status.states[0].phase))
    assert r.run() == 0
    assert broker.calls.count("submit_bracket") == 1
    entry = broker.engine.get_order_by_client_id(CID)
    assert entry is not None and entry.status is OrderStatus.FILLED
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] is not p][:5] == [
        Phase.WAITING_FOR_OPEN,
        Phase.SEARCHING,
        Phase.ORDER_SENT,
        Phase.ORDER_SUBMITTED,
        Phase.ACTIVE_TRADE,
    ]
    # Each execution came twice (stream and FILL activities) and is journaled once: entry, then the flatten.
    records = journal.records()
    assert [r.leg for r in records] == ["entry", "flatten"]
    assert len({r.id for r in records}) == 2
    assert broker.engine.position == 0
    assert "cancel_orders" in broker.calls and "close_position" in broker.calls  # close - 5 min


def test_a_stray_order_is_canceled_by_the_machine(tmp_path: Path) -> None:
    broker, journal = world(tmp_path, day())
    stray = OrderSnapshot(
        "stray-1", "manual-order", SYMBOL, "buy", OrderType.LIMIT, OrderStatus.NEW, Decimal(5)
    )
    broker.foreign.append(stray)
    assert runner(broker, journal).run() == 0
    assert broker.calls.count("cancel_order") == 1 and broker.foreign == []


def test_the_kill_switch_refuses_the_entry(tmp_path: Path) -> None:
    broker, journal = world(tmp_path, day({"10:00": BREAKOUT}, after="10:01"))
    engage(halt_path(journal.path), DAY, "manual flatten")
    statuses: list[RunnerStatus] = []
    r = runner(broker, journal)
    r.observe(statuses.append)
    assert r.run() == 0
    assert "submit_bracket" not in broker.calls
    # Refused, it searches again (a new box, no second order while the switch holds).
    assert any(s.states[0].phase is Phase.ORDER_SENT for s in statuses)
    after_refusal = [s.states[0].phase for s in statuses if s.now >= at("10:01")]
    assert Phase.SEARCHING in after_refusal and Phase.ACTIVE_TRADE not in after_refusal


def test_entries_wait_while_the_trade_stream_is_down(tmp_path: Path) -> None:
    broker, journal = world(tmp_path, day({"10:00": BREAKOUT}, after="10:01"))
    broker.stream_status = "disconnected"
    assert runner(broker, journal).run() == 0
    assert "submit_bracket" not in broker.calls


def test_a_failed_reconcile_is_retried_soon(tmp_path: Path) -> None:
    broker, journal = world(tmp_path, day(), start="09:00")
    broker.fail["get_clock"] = (BrokerUnavailable("GET /v2/clock: timeout"), 1)
    times: list[dt.datetime] = []
    real = broker.get_clock

    def clock_read() -> object:
        times.append(broker.clock.now())
        return real()

    broker.get_clock = clock_read  # type: ignore[method-assign]
    assert runner(broker, journal).run() == 0
    assert times[1] - times[0] == dt.timedelta(seconds=15)


def test_a_position_is_flattened_before_the_close_and_the_run_ends_flat(tmp_path: Path) -> None:
    broker, journal = world(tmp_path, day({"10:00": BREAKOUT}, after="10:01"))
    closes: list[dt.datetime] = []
    real_close = broker.close_position

    def close_position(symbol: str) -> object:
        closes.append(broker.clock.now())
        return real_close(symbol)

    broker.close_position = close_position  # type: ignore[method-assign]
    assert runner(broker, journal).run() == 0
    # At close - 5 min (here the 15-minute reconcile's wake); the close fills at the next bar's open
    # (15:55, traded when that bar closes at 15:56), and meanwhile the executor waits for the broker to
    # say flat, asking again every 30 s (a market close already working is not sent twice).
    assert closes[0] == at("15:55") and closes[-1] <= at("15:56")
    assert broker.engine.position == 0 and [r.leg for r in journal.records()] == ["entry", "flatten"]


@pytest.mark.parametrize("risk_pct", [None, 1.0])
def test_equity_is_read_only_when_it_sizes_trades(tmp_path: Path, risk_pct: float | None) -> None:
    broker, journal = world(tmp_path, day())
    assert runner(broker, journal, Params(risk_pct=risk_pct)).run() == 0
    first_reconcile = broker.calls[: broker.calls.index("list_positions")]
    assert ("get_account" in first_reconcile) == (risk_pct is not None)


def test_an_error_while_holding_a_position_never_ends_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The keys refused (401) at a reconcile mid-trade: flat, that ends the run (exit 3); holding, the
    runner says why in one line, pauses, reconciles again, and trades the day out."""
    broker, journal = world(tmp_path, day({"10:00": BREAKOUT}, after="10:01"))
    r = runner(broker, journal)
    armed: list[bool] = []

    def after_entry(status: RunnerStatus) -> None:
        if not armed and status.states[0].position_qty != 0:
            broker.fail["get_clock"] = (BrokerAuthError("GET /v2/clock: unauthorized. (HTTP 401)"), 3)
            armed.append(True)

    r.observe(after_entry)
    with caplog.at_level("ERROR", logger="breakout_bot.live"):
        assert r.run() == 0
    assert armed and caplog.text.count("not exiting") == 3
    assert broker.engine.position == 0 and [x.leg for x in journal.records()] == ["entry", "flatten"]
    flat_broker, flat_journal = world(tmp_path / "flat", day())
    flat_broker.fail["get_clock"] = (BrokerAuthError("GET /v2/clock: unauthorized. (HTTP 401)"), -1)
    with pytest.raises(BrokerAuthError):
        runner(flat_broker, flat_journal).run()


def test_the_close_never_waits_inside_the_executor(tmp_path: Path) -> None:
    """CloseAll returns at once (a follow-up for the machine), whatever the broker does: the runner's
    clock does not move inside an action."""
    from breakout_bot.core.events import CloseAll, CloseFailed
    from breakout_bot.errors import InsufficientQty

    broker, journal = world(tmp_path, day({"10:00": BREAKOUT}, after="10:01"))
    r = runner(broker, journal)
    r.observe(lambda status: r.stop() if status.states[0].position_qty != 0 else None)
    r.run()
    before = broker.clock.now()
    broker.fail["close_position"] = (InsufficientQty("held_for_orders 100", status=403), 1)
    follow = r.executor.execute(SYMBOL, CloseAll(SYMBOL, "test"), "rest")
    assert broker.clock.now() == before
    assert [type(f) for f in follow] == [CloseFailed] and follow[0].retry_after <= 1.0  # type: ignore[union-attr]
    follow = r.executor.execute(SYMBOL, CloseAll(SYMBOL, "test"), "rest")
    assert broker.clock.now() == before and [type(f).__name__ for f in follow] == ["OrderUpdate"]


def test_the_start_heap_is_frozen_after_the_first_reconcile(tmp_path: Path) -> None:
    # A journal of years of fills is ~2 objects per record: left to the collector, each full collection
    # walks them on the runner's thread (issue 21: bar close -> order p99 with a 100k-record ledger).
    import gc

    gc.unfreeze()
    broker, journal = world(tmp_path, day())
    journal.extend([])
    try:
        assert gc.get_freeze_count() == 0
        assert runner(broker, journal).run() == 0
        # (Asked once: gc.get_freeze_count walks the whole frozen heap; asked after every step it made
        # this test take 50 s.)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_stop_that_was_dropped_is_raised_on_the_next_turn(tmp_path: Path) -> None:
    """The loop asks `check_stop` on every turn (cli/stop_signals.py raises there a SIGTERM or Ctrl-C
    whose first raise a finalizer swallowed): what it raises ends the run, with the bracket left working."""

    class Stop(BaseException):
        pass

    broker, journal = world(tmp_path, day({"10:00": BREAKOUT}, after="10:01"))
    turns = 0

    def check_stop() -> None:
        nonlocal turns
        turns += 1
        if broker.clock.now() >= at("10:30"):
            raise Stop

    bot = Runner(
        broker,
        broker,
        broker.clock,
        journal,
        [SYMBOL],
        Params(),
        RunnerOptions(days=1),
        check_stop=check_stop,
    )
    with pytest.raises(Stop):
        bot.run()
    assert turns > 30  # asked on every turn, not once
    assert at("10:30") <= broker.clock.now() < at("10:32")
    assert bot.states[SYMBOL].phase is Phase.ACTIVE_TRADE
