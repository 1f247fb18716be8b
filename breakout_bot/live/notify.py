"""Notifications: what the bot does, sent to its owner through apprise (Telegram, Discord, Slack, e-mail,
ntfy, Pushover, JSON webhooks…), from a queue on its own thread.

`Notifier` owns the queue and the sending thread: `post` never blocks the runner (a full queue drops the
message and says so in the log), each message is tried a bounded number of times with backoff, at
most `per_minute` are sent per minute (the rest wait their turn), and every text passes a `Redactor`
holding the API keys and the notification URLs' own tokens, so no secret ever leaves in a message.

`NotifyObserver` is a runner observer (`Runner.observe`, like the terminal panel): it compares each
`RunnerStatus` with the one before and posts what changed: an entry filled, an exit with its P&L, a
position without a stop, the trade stream down for more than two minutes (and back), a risk limit met
(a symbol's daily loss ending its day; the portfolio's daily loss or `--max-positions` refusing an
entry) and the kill switch seen engaged, once each a day, the broker failing BROKER_FAILURES_ALERT calls
in a row (and answering again), the API keys refused after the start (with what the bot does about it),
and a summary of the day once every symbol is done. `stopped` posts the run's last line (what it
leaves open).

apprise is an optional extra (`pip install 'breakout-bot[notify]'`): it brings requests-oauthlib,
markdown, PyYAML and click, which a bot without notifications does not need.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from ..core.model import NEW_YORK
from ..core.state import DONE_FOR_THE_DAY, State
from ..errors import ConfigError
from ..redaction import Redactor, url_scheme, url_secrets
from .risk import KILL_SWITCH
from .status import left_open

if TYPE_CHECKING:
    from .runner import RunnerStatus

log = logging.getLogger(__name__)

STREAM_DOWN_ALERT = timedelta(minutes=2)
BROKER_FAILURES_ALERT = 3  # calls in a row without an answer (each after the adapter's own retries)
QUEUE_SIZE = 200
Send = Callable[[str, str], bool]  # (title, body) -> delivered


def apprise_sender(urls: Sequence[str]) -> Send:
    """A `Send` through apprise for `urls`; ConfigError (one line, no token) when apprise is missing
    or does not understand a URL."""
    try:
        import apprise
    except ImportError:
        raise ConfigError(
            "--notify needs apprise: pip install 'breakout-bot[notify]' (or pip install apprise)"
        ) from None
    logging.getLogger("apprise").setLevel(logging.CRITICAL)  # its own lines may quote the URL
    sender = apprise.Apprise()
    for url in urls:
        if not sender.add(url):
            raise ConfigError(f"--notify: apprise does not understand the URL {url_scheme(url)}")

    def send(title: str, body: str) -> bool:
        return bool(sender.notify(title=title, body=body))

    return send


@dataclass(frozen=True)
class _Message:
    title: str
    body: str


class Notifier:
    """A queue of messages and the thread that sends them (bounded retries, rate-limited, redacted)."""

    def __init__(
        self,
        send: Send,
        redact: Redactor,
        *,
        per_minute: int = 20,
        attempts: int = 3,
        backoff: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._redact = redact
        self.per_minute = per_minute
        self.attempts = attempts
        self.backoff = backoff
        self._monotonic = monotonic
        self._queue: queue.Queue[_Message | None] = queue.Queue(QUEUE_SIZE)
        self._sent_at: deque[float] = deque()
        self._wake = threading.Event()  # set by close(): waits (backoff, rate) end early
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self._thread.start()

    def post(self, title: str, body: str) -> None:
        """Queue a message; never blocks (a full queue drops it, with a line in the log)."""
        message = _Message(self._redact(title), self._redact(body))
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self.dropped += 1
            log.warning("notification dropped (queue full): %s", message.title)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (within `timeout` wall seconds), then stop the thread."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._wake.set()
        self._thread.join(1.0)

    def _run(self) -> None:
        while True:
            message = self._queue.get()
            if message is None:
                return
            self._respect_rate()
            self._deliver(message)

    def _respect_rate(self) -> None:
        window = 60.0
        while len(self._sent_at) >= self.per_minute:
            wait = self._sent_at[0] + window - self._monotonic()
            if wait <= 0:
                self._sent_at.popleft()
                continue
            if self._wake.wait(min(wait, 1.0)):
                return
        self._sent_at.append(self._monotonic())

    def _deliver(self, message: _Message) -> None:
        for attempt in range(self.attempts):
            try:
                if self._send(message.title, message.body):
                    self.sent += 1
                    return
                problem = "not delivered"
            except Exception as exc:  # a notification service's failure never reaches the runner
                problem = self._redact(f"{type(exc).__name__}: {exc}")
            if attempt + 1 < self.attempts and self._wake.wait(self.backoff * 2**attempt):
                break
        self.failed += 1
        log.warning("notification %r not sent after %d attempts (%s)", message.title, self.attempts, problem)


def _money(value: float) -> str:
    return f"{value:+,.2f}"


class NotifyObserver:
    """A runner observer turning status changes into messages (see the module's docstring)."""

    def __init__(self, notifier: Notifier, label: str = "breakout-bot") -> None:
        self.notifier = notifier
        self.label = label
        self._last: dict[str, State] = {}
        self._last_status: RunnerStatus | None = None
        self._stream_down_since: datetime | None = None
        self._stream_alerted = False
        self._summarized: set[date] = set()
        self._limits_told: set[tuple[date, str]] = set()
        self._broker_alerted = False
        self._keys_alerted = False

    def __call__(self, status: RunnerStatus) -> None:
        for state in status.states:
            before = self._last.get(state.symbol)
            if before is not None:
                self._compare(before, state)
            self._last[state.symbol] = state
        self._watch_stream(status)
        self._watch_limits(status)
        self._watch_broker(status)
        self._watch_keys(status)
        self._summary(status)
        self._last_status = status

    def stopped(self, reason: str) -> None:
        """The run's last message: why it stopped and what it leaves open at the broker."""
        states = self._last_status.states if self._last_status is not None else ()
        self.notifier.post(f"{self.label} stopped", f"{reason}. {left_open(states)}")

    def _compare(self, before: State, now: State) -> None:
        symbol = now.symbol
        if before.position_qty == 0 and now.position_qty != 0:
            side = "long" if now.position_qty > 0 else "short"
            price = f" at {now.avg_entry_price}" if now.avg_entry_price is not None else ""
            bracket = ""
            if now.entry is not None:
                bracket = f"; stop {now.entry.stop_price}, take-profit {now.entry.take_profit_price}"
            self.notifier.post(
                f"{symbol}: entry filled", f"{symbol} {side} {abs(now.position_qty)}{price}{bracket}"
            )
        elif before.position_qty != 0 and now.position_qty == 0:
            pnl = now.realized_pnl_today - before.realized_pnl_today
            if before.flattened or now.flattened:
                reason = "flattened before the close"
            elif before.unprotected or before.closing:
                reason = "closed (it had no stop)"
            else:
                reason = "take-profit" if pnl > 0 else "stop-loss"
            self.notifier.post(
                f"{symbol}: exit ({reason})",
                f"{symbol} {reason}: P&L {_money(pnl)}, today {_money(now.realized_pnl_today)}",
            )
        loss = now.params.max_daily_loss
        if (
            loss
            and now.phase is DONE_FOR_THE_DAY
            and before.phase is not DONE_FOR_THE_DAY
            and -now.realized_pnl_today >= loss
        ):
            self.notifier.post(
                f"{symbol}: daily loss limit reached",
                f"{symbol} lost {_money(now.realized_pnl_today)} today, the limit is {loss:,.2f}: no more "
                "entries in it today",
            )
        if now.unprotected and not before.unprotected:
            self.notifier.post(
                f"{symbol}: position without a stop",
                f"{symbol} holds {now.position_qty} with no working stop: the bot closes it as soon as "
                "the market is open",
            )

    def _watch_stream(self, status: RunnerStatus) -> None:
        if status.stream_up:
            if self._stream_alerted:
                self.notifier.post("trade stream back", "the trade_updates stream is connected again")
            self._stream_down_since, self._stream_alerted = None, False
            return
        if self._stream_down_since is None:
            self._stream_down_since = status.now
        elif not self._stream_alerted and status.now - self._stream_down_since > STREAM_DOWN_ALERT:
            self._stream_alerted = True
            minutes = (status.now - self._stream_down_since).total_seconds() / 60
            self.notifier.post(
                "trade stream down",
                f"the trade_updates stream has been down for {minutes:.0f} minutes; fills are read "
                "over REST meanwhile",
            )

    def _watch_limits(self, status: RunnerStatus) -> None:
        """Each limit (and the kill switch) once a day, when it first refuses an entry or shows."""
        day = status.now.astimezone(NEW_YORK).date()
        for what, why in status.limits:
            if (day, what) in self._limits_told:
                continue
            self._limits_told.add((day, what))
            if what == KILL_SWITCH:
                self.notifier.post("kill switch engaged", f"kill switch engaged: {why}; no new entries today")
            else:
                self.notifier.post(f"risk limit: {what}", f"{why}: the breakout is skipped (and later ones)")

    def _watch_broker(self, status: RunnerStatus) -> None:
        """One message when the broker's calls keep failing, one when it answers again."""
        if status.broker_failures >= BROKER_FAILURES_ALERT and not self._broker_alerted:
            self._broker_alerted = True
            self.notifier.post(
                "broker errors",
                f"{status.broker_failures} broker requests in a row failed, each after its retries "
                f"(last: {status.broker_error}); the bot keeps trying",
            )
        elif status.broker_failures == 0 and self._broker_alerted:
            self._broker_alerted = False
            self.notifier.post("broker answering again", "the broker answers requests again")

    def _watch_keys(self, status: RunnerStatus) -> None:
        if status.keys_refused is not None and not self._keys_alerted:
            self._keys_alerted = True
            self.notifier.post("API keys refused", f"the broker refused the API keys: {status.keys_refused}")
        elif status.keys_refused is None and self._keys_alerted:
            self._keys_alerted = False
            self.notifier.post("API keys accepted again", "the broker accepts the API keys again")

    def _summary(self, status: RunnerStatus) -> None:
        states = status.states
        if not states or any(s.phase is not DONE_FOR_THE_DAY or s.position_qty != 0 for s in states):
            return
        sessions = {s.session.date for s in states if s.session is not None}
        if len(sessions) != 1:
            return
        (day,) = sessions
        if day in self._summarized:
            return
        self._summarized.add(day)
        trades = sum(s.trades_today for s in states)
        pnl = sum(s.realized_pnl_today for s in states)
        per_symbol = ", ".join(f"{s.symbol} {_money(s.realized_pnl_today)}" for s in states)
        equity = f"; equity {Decimal(status.equity):,.2f}" if status.equity is not None else ""
        self.notifier.post(
            f"{self.label}: day {day}",
            f"{day}: {trades} trades, realized P&L {_money(pnl)} ({per_symbol}){equity}",
        )


class Notifications:
    """A run's notifications: the sender thread and the runner observer, started from the settings."""

    def __init__(self, notifier: Notifier, label: str = "breakout-bot") -> None:
        self.notifier = notifier
        self.observer = NotifyObserver(notifier, label)

    @classmethod
    def start(cls, urls: Sequence[str], secrets: Iterable[str], label: str = "breakout-bot") -> Notifications:
        return cls(Notifier(apprise_sender(urls), Redactor([*secrets, *url_secrets(urls)])), label)

    def close(self, reason: str) -> None:
        """Post the run's last message (why it stopped, what stays open), send the queue, stop."""
        self.observer.stopped(reason)
        self.notifier.close()
