"""Notifications (issue 21): the sender thread (never blocks, bounded retries, rate limit, redaction)
and the runner observer (which status changes become which messages), against a loopback receiver."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from notify_receiver import json_receiver

from breakout_bot.core.events import SubmitBracket
from breakout_bot.core.model import NEW_YORK, Session
from breakout_bot.core.state import ACTIVE_TRADE, DONE_FOR_THE_DAY, SEARCHING, evolve, initial_state
from breakout_bot.errors import (
    BrokerAuthError,
    BrokerError,
    BrokerNotFound,
    BrokerUnavailable,
    ConfigError,
    OrderOutcomeUnknown,
)
from breakout_bot.live.health import BrokerHealth, watched
from breakout_bot.live.notify import Notifier, NotifyObserver, apprise_sender
from breakout_bot.live.runner import RunnerStatus
from breakout_bot.redaction import Redactor, url_secrets

KEY_ID, SECRET = "PKTESTKEY1234567890A", "sEcReT/abcdefghijklmnopqrstuvwxyz0123456"
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def until(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


class Recorder:
    def __init__(self, results: list[bool | Exception] | None = None) -> None:
        self.results = list(results or [])
        self.calls: list[tuple[str, str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, title: str, body: str) -> bool:
        self.gate.wait(10)
        self.calls.append((title, body))
        result = self.results.pop(0) if self.results else True
        if isinstance(result, Exception):
            raise result
        return result


def test_post_never_waits_and_a_full_queue_drops() -> None:
    send = Recorder()
    send.gate.clear()  # the service hangs
    notifier = Notifier(send, Redactor(), per_minute=1000)
    t0 = time.perf_counter()
    for i in range(300):
        notifier.post("t", f"m{i}")
    assert time.perf_counter() - t0 < 0.5
    assert notifier.dropped >= 300 - 201  # the queue holds 200, the thread one more
    send.gate.set()
    notifier.close(timeout=10)
    assert len(send.calls) == 300 - notifier.dropped


def test_retries_are_bounded_with_backoff() -> None:
    send = Recorder([False, RuntimeError("503"), True, False, False, False])
    notifier = Notifier(send, Redactor(), attempts=3, backoff=0.01)
    notifier.post("first", "x")
    notifier.post("second", "y")
    notifier.close(timeout=10)
    assert [c[0] for c in send.calls] == ["first"] * 3 + ["second"] * 3
    assert (notifier.sent, notifier.failed) == (1, 1)


def test_rate_limited_per_minute() -> None:
    now = [1000.0]
    send = Recorder()
    notifier = Notifier(send, Redactor(), per_minute=3, monotonic=lambda: now[0])
    for i in range(5):
        notifier.post("t", f"m{i}")
    assert until(lambda: len(send.calls) == 3)
    time.sleep(0.3)
    assert len(send.calls) == 3  # the fourth waits for the minute to pass
    now[0] += 61
    assert until(lambda: len(send.calls) == 5, timeout=5)
    notifier.close()


def test_no_secret_in_any_message_end_to_end() -> None:
    with json_receiver() as rx:
        url = rx.url(TOKEN)  # as a Telegram URL holds its bot token
        secrets = [KEY_ID, SECRET, *url_secrets([url])]
        notifier = Notifier(apprise_sender([url]), Redactor(secrets))
        notifier.post(
            f"error with {KEY_ID}", f"broker said: bad key {KEY_ID}/{SECRET} at {url} (token {TOKEN})"
        )
        notifier.close(timeout=20)
        assert notifier.sent == 1
        [message] = rx.messages
        assert "bad key ***/***" in message["message"]
        text = str(message)
        for secret in (KEY_ID, SECRET, TOKEN):
            assert secret not in text


def test_a_url_apprise_does_not_know_is_one_line_without_its_token() -> None:
    with pytest.raises(ConfigError) as info:
        apprise_sender([f"nosuchservice://{TOKEN}@host"])
    assert TOKEN not in str(info.value) and "nosuchservice://…" in str(info.value)


# -- the observer ---------------------------------------------------------------------------------


def status(now: datetime, *states: object, up: bool = True, equity: str | None = "100000") -> RunnerStatus:
    return RunnerStatus(now, up, tuple(states), Decimal(equity) if equity else None)  # type: ignore[arg-type]


class _Sink:
    """Stands in for Notifications: what the observer posts, in order."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, str]] = []

    def post(self, title: str, body: str) -> None:
        self.posted.append((title, body))


def test_observer_entry_exit_unprotected_stream_and_summary() -> None:
    sink = _Sink()
    posted = sink.posted
    obs = NotifyObserver(sink)  # type: ignore[arg-type]
    t = datetime(2024, 3, 4, 10, 0, tzinfo=NEW_YORK)
    entry = SubmitBracket("AAPL", "buy", 100, Decimal("185.20"), Decimal("189.10"), "AAPL-20240304-1")
    session = Session(t.date(), t.replace(hour=9, minute=30), t.replace(hour=16))
    s0 = evolve(initial_state("AAPL"), phase=SEARCHING, session=session)
    obs(status(t, s0))
    s1 = evolve(
        s0, phase=ACTIVE_TRADE, position_qty=Decimal(100), entry=entry, avg_entry_price=Decimal("187.15")
    )
    obs(status(t + timedelta(minutes=1), s1))
    assert posted[-1] == (
        "AAPL: entry filled",
        "AAPL long 100 at 187.15; stop 185.20, take-profit 189.10",
    )
    s2 = evolve(s1, phase=SEARCHING, position_qty=Decimal(0), realized_pnl_today=195.0, trades_today=1)
    obs(status(t + timedelta(minutes=5), s2))
    assert posted[-1] == ("AAPL: exit (take-profit)", "AAPL take-profit: P&L +195.00, today +195.00")
    s3 = evolve(s2, position_qty=Decimal(-100), unprotected=True)
    obs(status(t + timedelta(minutes=6), s3))
    assert posted[-1][0] == "AAPL: position without a stop"
    n = len(posted)
    obs(status(t + timedelta(minutes=7), s3, up=False))
    obs(status(t + timedelta(minutes=8), s3, up=False))
    assert len(posted) == n  # down for less than two minutes: nothing yet
    obs(status(t + timedelta(minutes=9, seconds=30), s3, up=False))
    assert posted[-1][0] == "trade stream down" and "2 minutes" in posted[-1][1]
    obs(status(t + timedelta(minutes=10), s3, up=False))
    assert len(posted) == n + 1  # said once
    obs(status(t + timedelta(minutes=11), s3))
    assert posted[-1][0] == "trade stream back"
    done = evolve(
        s3,
        phase=DONE_FOR_THE_DAY,
        position_qty=Decimal(0),
        flattened=True,
        realized_pnl_today=120.5,
        trades_today=2,
    )
    obs(status(t + timedelta(hours=6), done, equity="100120.50"))
    assert posted[-2][0] == "AAPL: exit (flattened before the close)"
    title, body = posted[-1]
    assert title.startswith("breakout-bot: day")
    assert "2 trades, realized P&L +120.50 (AAPL +120.50); equity 100,120.50" in body
    obs(status(t + timedelta(hours=6, minutes=1), done))
    assert posted[-1][0].startswith("breakout-bot: day")  # once a day
    assert sum(1 for p in posted if p[0].startswith("breakout-bot: day")) == 1
    obs.stopped("finished (exit 0)")
    assert posted[-1][0] == "breakout-bot stopped" and posted[-1][1].startswith("finished (exit 0). ")


def test_observer_trouble_once_each_and_its_end() -> None:
    """Broker errors and refused keys: one message when they start, one when they end; a limit once a
    day, however many entries it refuses."""
    sink = _Sink()
    posted = sink.posted
    obs = NotifyObserver(sink)  # type: ignore[arg-type]
    t = datetime(2024, 3, 4, 10, 0, tzinfo=NEW_YORK)
    s0 = initial_state("AAPL")
    limit = (("max positions", "max positions 1 reached (MSFT)"),)
    for minute, failures in enumerate([1, 2, 3, 4, 5, 0, 0]):
        obs(RunnerStatus(t + timedelta(minutes=minute), True, (s0,), None, limit, failures, "E: 503"))
    assert [p[0] for p in posted] == ["risk limit: max positions", "broker errors", "broker answering again"]
    assert posted[1][1].startswith("3 broker requests in a row failed, each after its retries (last: E: 503)")
    obs(RunnerStatus(t + timedelta(days=1), True, (s0,), None, limit))
    assert posted[-1][0] == "risk limit: max positions"  # the next day, once again
    refused = "BrokerAuthError: unauthorized; holding AAPL 100: the bot keeps running"
    for _ in range(3):
        obs(RunnerStatus(t + timedelta(days=1), True, (s0,), None, (), 0, "", refused))
    obs(RunnerStatus(t + timedelta(days=1), True, (s0,), None))
    assert [p[0] for p in posted[-2:]] == ["API keys refused", "API keys accepted again"]
    assert posted[-2][1] == f"the broker refused the API keys: {refused}"


def test_every_broker_call_is_counted() -> None:
    health = BrokerHealth()

    class Broker:
        def __init__(self) -> None:
            self.errors: list[Exception] = []
            self.requests_sent = 7

        def get_clock(self) -> str:
            if self.errors:
                raise self.errors.pop(0)
            return "clock"

    inner = Broker()
    broker = watched(inner, health)
    assert broker.requests_sent == 7 and broker.get_clock() == "clock"
    inner.errors = [BrokerUnavailable("503 (gave up after 5 attempts)"), OrderOutcomeUnknown("reset")]
    for _ in range(2):
        with pytest.raises(BrokerError):
            broker.get_clock()
    assert health.failures == 2 and health.last_error == "OrderOutcomeUnknown: reset"
    inner.errors = [BrokerNotFound("404")]  # an answer: the broker is there
    with pytest.raises(BrokerNotFound):
        broker.get_clock()
    assert health.failures == 0
    inner.errors = [BrokerAuthError("401 unauthorized")]
    with pytest.raises(BrokerAuthError):
        broker.get_clock()
    assert health.keys_refused == "BrokerAuthError: 401 unauthorized"
    broker.get_clock()
    assert health.keys_refused is None
