"""The runner: owns time and the event queue, and trades one machine per symbol over one broker.

It turns clock wakes, closed bars and trade updates into machine events, steps the machines, and hands
their actions to the executor; it never decides strategy. Its collaborators do the rest:

    BarFeed (feed.py)               closed bars, polled or streamed, once each and in order
    FillLedger (ledger.py)          what is recorded, which updates are news, new FILL activities
    ReconcileReader (reconcile.py)  the broker's truth as Reconciled events
    Executor (executor.py)          the machine's actions against the broker and the journal
    RiskGate (risk.py)              every entry passes it

The broker is the source of truth: we reconcile over REST at start, after every stream (re)connection,
on a timer and at each new session, and every minute we read new FILL activities (the stream is a
hint, not the ledger). The runner never sleeps by itself: it blocks on its queue for as long as the
clock says (`clock.wall_timeout`), so the same loop runs in real, accelerated or stepped time.

No error makes it leave a position behind: while any symbol holds shares, an error that would end the
run (keys refused, the broker gone, a bug) is logged in one line and the loop carries on after a pause,
reconciling again (the machine re-protects or keeps working the close). Flat, the error ends the run.
"""

from __future__ import annotations

import gc
import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from ..broker.base import Broker, FillActivity, MarketData, StreamHandle, StreamStatus
from ..core import machine
from ..core.events import BarClosed, Event, OrderUpdate, PositionChanged, SleepUntil, Tick, WakeAt
from ..core.model import BAR_LENGTH, NEW_YORK, Bar
from ..core.params import Params
from ..core.state import ACTIVE_TRADE, DONE_FOR_THE_DAY, SEARCHING, State, initial_state
from ..errors import BotError, BrokerAuthError, BrokerError
from ..journal import Journal, RunTags
from .clock import Clock
from .executor import Executor, ReconcileNow
from .feed import BarFeed
from .halt import halt_path
from .health import BrokerHealth, describe, watched
from .ledger import FillLedger, Source
from .reconcile import ORDERS_LOOKBACK, MarketView, PositionRead, ReconcileReader
from .risk import RiskGate

log = logging.getLogger(__name__)

LEDGER_DOWN_GRACE_S = 3.0  # wall seconds for the stream's last fills when the ledger is unreadable at exit
GIVE_UP_AFTER_CLOSE = timedelta(minutes=10)  # a position still open this long after the close: exit anyway
RECONCILE_RETRY = timedelta(seconds=15)  # after a failed reconcile (each call already retried with backoff)
SETTLE_CHECK_SECONDS = 5.0  # before exiting: how often a position still closing is read
ERROR_PAUSE_SECONDS = 30.0  # an error while holding a position: carry on after this pause


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    poll_delay: timedelta = timedelta(seconds=2)  # after a minute closes, before asking for its bar
    reconcile_every: timedelta = timedelta(minutes=15)
    days: int | None = 1  # sessions to trade before exiting; None = forever
    stream: bool = True
    bars_stream: bool = False  # bars pushed by the market-data websocket; the minute poll only fills gaps
    stream_start_timeout: float = 10.0  # wall seconds to wait for the trade stream before trading
    today_only: bool = (
        False  # `--once`: today's session or nothing (a holiday exits, never sleeps to tomorrow)
    )


@dataclass(frozen=True, slots=True)
class RunnerStatus:
    """What the runner is doing, published after every step (the terminal panel reads it)."""

    now: datetime
    stream_up: bool
    states: tuple[State, ...]
    equity: Decimal | None = None  # the account's, as of its last read
    # What the notifications read besides the machines (live/notify.py): the risk limits and the kill
    # switch that refused entries today ((what, why) pairs: RiskGate.limits), the broker's calls failed
    # in a row and the last failure, and a refusal of the API keys after the start (and what the bot does).
    limits: tuple[tuple[str, str], ...] = ()
    broker_failures: int = 0
    broker_error: str = ""
    keys_refused: str | None = None


Observer = Callable[[RunnerStatus], None]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    status: StreamStatus
    detail: str
    stream: str = "trading"


@dataclass(frozen=True, slots=True)
class BarEvent:
    symbol: str
    bar: Bar


QueueItem = OrderUpdate | StreamEvent | BarEvent  # what the stream threads put on the queue


class Runner:
    def __init__(
        self,
        broker: Broker,
        data: MarketData,
        clock: Clock,
        journal: Journal,
        symbols: Iterable[str],
        params: Params,
        options: RunnerOptions | None = None,
        observers: Iterable[Observer] = (),
        tags: RunTags | None = None,
        check_stop: Callable[[], None] = lambda: None,
    ) -> None:
        # Called on every turn of the loop: raises a stop (SIGTERM, Ctrl-C) whose first raise was
        # dropped where the signal landed (cli/stop_signals.py).
        self._check_stop = check_stop
        self.health = BrokerHealth()  # every call's outcome, for the status (live/health.py)
        broker = watched(broker, self.health)
        data = watched(data, self.health)
        self.broker = broker
        self.clock = clock
        self.options = options or RunnerOptions()
        self.states: dict[str, State] = {s: initial_state(s, params) for s in symbols}
        self.stream_up = not self.options.stream
        self.feed = BarFeed(data)
        self.ledger = FillLedger(broker, journal, tags)
        self.gate = RiskGate(
            broker,
            clock,
            halt_path(journal.path),
            tags.mode if tags else None,
            params,
            lambda: self.states.values(),
        )
        self.reader = ReconcileReader(broker, self.feed, params.lookback, params.risk_pct is not None)
        self.executor = Executor(broker, clock, self.ledger, self.gate, lambda: self.stream_up)
        self._observers = list(observers)
        self._events: queue.Queue[QueueItem] = queue.Queue()
        self._stream: StreamHandle | None = None
        # Time: the wakes the runner owes itself.
        self._sleep_until: datetime | None = None
        self._next_poll: datetime | None = None
        self._next_reconcile: datetime | None = None
        self._need_reconcile = True
        self._sessions_done: set[date] = set()
        self._wakes: dict[str, datetime] = {}  # retries the machines asked for (WakeAt)
        self._bars_refused = False  # the bar stream was refused (406/409): polling only
        # With --max-positions the symbols' order decides a contested slot (core/portfolio.py): streamed
        # bars then wait for the minute's poll and are served with the polled ones in that order, rather
        # than in the order the websocket happened to deliver them.
        self._in_order = params.max_positions > 0
        self._held_bars: dict[str, list[Bar]] = {}
        self._stop = False
        self._reconciled = False  # a first reconcile has succeeded
        self._heap_frozen = False  # the start's heap was frozen (after the first reconcile)
        self._keys_refused: str | None = None  # the keys refused mid-run, and what the bot does about it
        self.nothing_today: str | None = None  # why a today-only run found nothing to trade

    # ------------------------------------------------------------------ lifecycle
    def observe(self, observer: Observer) -> None:
        """Call `observer` with the runner's status after every step."""
        self._observers.append(observer)

    def stop(self) -> None:
        """Return from run() at the next turn of the loop, without cleanup (orders stay at the broker)."""
        self._stop = True

    def run(self) -> int:
        """Trade until `options.days` sessions are done (or forever). Returns an exit code."""
        if self.options.stream:
            self._stream = self.broker.stream_trade_updates(self._events.put, self._on_trade_stream)
            self._await_stream()
        if self.options.bars_stream:
            self.feed.start_stream(
                list(self.states),
                lambda symbol, bar: self._events.put(BarEvent(symbol, bar)),
                lambda status, detail: self._events.put(StreamEvent(status, detail, "bars")),
            )
        try:
            while not self._stop:
                self._check_stop()
                try:
                    if self._turn():
                        return 0
                except Exception as exc:  # a held position outranks any error
                    self._carry_on_or_raise(exc)
            return 0
        finally:
            if self._stream is not None:
                self._stream.stop()
            self.feed.stop_stream()

    def _turn(self) -> bool:
        """One turn of the loop; True when the run is over."""
        if self._need_reconcile:
            self._reconcile()
            return False
        if self._finished() and self._settled():
            return True
        wake = self._next_wake()
        item = self._next_event(self.clock.wall_timeout(wake))
        if item is not None:
            self._handle_queued(item)
            return False
        if self.clock.now() < wake:
            self.clock.reached(wake)
            if self.clock.now() < wake:
                return False
        self._on_wake()
        return False

    def _carry_on_or_raise(self, exc: BaseException) -> None:
        """An error that would end the run: re-raise it when flat; while holding a position, say why in
        one line, pause, and reconcile again (the machine re-protects or keeps working the close)."""
        held = {s: st.position_qty for s, st in self.states.items() if st.position_qty != 0}
        positions = ", ".join(f"{s} {q}" for s, q in held.items())
        if isinstance(exc, BrokerAuthError):
            # The notifications say so, and what the bot does about it (until a call succeeds again).
            self.health.refused(exc)
            self._keys_refused = (
                f"{describe(exc)}; holding {positions}: the bot keeps running and tries again every "
                f"{ERROR_PAUSE_SECONDS:.0f}s (the stops already at the broker keep working; nothing new "
                "can be sent until the keys are accepted)"
                if held
                else f"{describe(exc)}; no position is open: the run stops"
            )
            self._publish()
        if not held:
            raise exc
        log.error(
            "%s while holding %s: not exiting; the position is re-checked (re-protected or closed) in %.0fs",
            describe(exc),
            positions,
            ERROR_PAUSE_SECONDS,
            exc_info=not isinstance(exc, BotError),
        )
        self._need_reconcile = True
        self.clock.sleep(ERROR_PAUSE_SECONDS)

    def _await_stream(self) -> None:
        """Give the trade stream its first connection attempt before trading (wall seconds, bounded).

        On a stepped clock virtual time only moves when we wait: without this, a session could run for
        virtual minutes while the websocket is still connecting, entries blocked meanwhile, and a
        simulated run would depend on thread timing."""
        deadline = time.monotonic() + self.options.stream_start_timeout
        while not self.stream_up and (left := deadline - time.monotonic()) > 0:
            item = self._next_event(min(left, 0.5))
            if item is None:
                continue
            self._handle_queued(item)
            if isinstance(item, StreamEvent) and item.stream == "trading":
                return  # connected, or failed: either way the loop below knows

    def _finished(self) -> bool:
        days = self.options.days
        if days is None:
            return False
        if len(self._sessions_done) < days or not all(
            s.phase is DONE_FOR_THE_DAY for s in self.states.values()
        ):
            return False
        # Done for the day is not the end while a flatten is still working: stay (polling fills and the
        # position) until flat, or the session is over, so the closing fill reaches the journal.
        now = self.clock.now()
        return all(
            s.position_qty == 0 or s.session is None or now >= s.session.close for s in self.states.values()
        )

    def _settled(self) -> bool:
        """Before exiting: sweep the ledger once more (the flatten's fill must reach the journal) and
        make sure we leave flat; a position still open keeps us here (bounded by the session close)."""
        ledger_read = self._poll_fills()
        now = self.clock.now()
        self._poll_positions([s for s, state in self.states.items() if state.position_qty != 0], now)
        still_open = [s for s in self.states.values() if s.position_qty != 0]
        if not still_open:
            if not ledger_read:
                # Flat, but the ledger cannot confirm the last fill reached the journal: the stream may
                # still be bringing it. Give it a moment; what it misses, the next start records.
                self._handle_events_for(LEDGER_DOWN_GRACE_S)
                log.warning(
                    "exiting with the fills ledger unreadable; the next start records any fill missed"
                )
            return True
        closes = [s.session.close for s in still_open if s.session is not None]
        if not closes or now >= max(closes) + GIVE_UP_AFTER_CLOSE:
            for s in still_open:
                log.error("%s: exiting with %s still open at the broker", s.symbol, s.position_qty)
            return True
        self.clock.sleep(SETTLE_CHECK_SECONDS)
        return False

    # ------------------------------------------------------------------ time
    def _next_wake(self) -> datetime:
        now = self.clock.now()
        candidates = []
        if self._trading():
            if self._next_poll is None:
                self._next_poll = _next_minute(now) + self.options.poll_delay
            candidates.append(self._next_poll)
            if self._next_reconcile is not None:
                candidates.append(self._next_reconcile)
        if self._sleep_until is not None:
            candidates.append(self._sleep_until)
        candidates.extend(self._wakes.values())
        if not candidates:
            candidates.append(now + timedelta(minutes=1))
        return min(candidates)

    def _trading(self) -> bool:
        return any(s.phase is not DONE_FOR_THE_DAY or s.position_qty != 0 for s in self.states.values())

    def _on_wake(self) -> None:
        now = self.clock.now()
        if self._sleep_until is not None and now >= self._sleep_until:
            self._sleep_until = None
            if all(s.phase is DONE_FOR_THE_DAY for s in self.states.values()):
                self._need_reconcile = True  # a new session: read the broker afresh
                return
        if self._next_reconcile is not None and now >= self._next_reconcile:
            self._need_reconcile = True
            return
        with self.executor.batch():  # the symbols acting in this wake share one read (the flatten's)
            if self._next_poll is not None and now >= self._next_poll:
                self._next_poll = _next_minute(now) + self.options.poll_delay
                self._minute(now)
            self._wakes = {s: w for s, w in self._wakes.items() if w > now}
            for symbol in self.states:
                self._step(symbol, Tick(now))

    def _minute(self, now: datetime) -> None:
        """Once a minute: fills from the ledger first, then positions, then bars, as the backtest orders them."""
        closed_bar = now.replace(second=0, microsecond=0) - BAR_LENGTH  # start of the bar that just closed
        streaming = self.options.bars_stream and not self._bars_refused
        if streaming:
            self._await_streamed_bars(closed_bar)
        self.gate.watch_halt()  # the kill switch, engaged by another process, shows in the status
        self._poll_fills()
        self._poll_positions(
            [
                symbol
                for symbol, state in self.states.items()
                if state.phase is ACTIVE_TRADE or (state.flattened and state.position_qty != 0)
            ],
            now,
        )
        if self._searching():
            self.gate.prefetch()
        sessions = {
            symbol: state.session
            for symbol, state in self.states.items()
            if state.session is not None
            and state.phase is not DONE_FOR_THE_DAY
            and not (streaming and self.feed.has(symbol, closed_bar))  # the websocket delivered it
        }
        fresh = self.feed.poll_all(sessions, now) if sessions else {}
        held, self._held_bars = self._held_bars, {}
        for symbol in self.states:  # the symbols' order: the same as the backtest's (portfolio.merge_steps)
            self._step_bars(symbol, [*held.get(symbol, []), *fresh.get(symbol, [])])

    def _await_streamed_bars(self, closed_bar: datetime, wall_limit: float = 0.05) -> None:
        """Give the bar websocket a moment (wall time) to deliver the bar that just closed, handling
        whatever arrives meanwhile; a bar still missing then is fetched over REST."""
        active = [s for s, st in self.states.items() if st.phase is not DONE_FOR_THE_DAY]
        self._handle_events_for(wall_limit, until=lambda: all(self.feed.has(s, closed_bar) for s in active))

    # ------------------------------------------------------------------ reads
    def _reconcile(self) -> None:
        """Read the broker's truth and hand it to every machine (start, reconnect, timer, new session)."""
        try:
            view = self.reader.market()
            if self.options.today_only and not self._reconciled and view.session is None:
                self.nothing_today = _nothing_today(view)
                log.info("%s", self.nothing_today)
                self._stop = True
                return
            self._reconciled = True
            if view.over is not None:
                self._sessions_done.add(view.over.date)
            # Today's fills first: the missed ones are recorded now, and all of them give each symbol its
            # realized P&L. Unreadable: the reconcile goes on (a position must still be managed).
            todays_fills = self.ledger.read_today(view.day_start)
            if todays_fills is not None:
                self._apply_fills(todays_fills)
            book = self.reader.orders(view)
            since = view.day_start - ORDERS_LOOKBACK
            book, positions = self.reader.positions(list(self.states), since, book)
            recent = self.reader.histories(list(self.states), view)
            self.reader.read_assets(list(self.states), view.session)
            with self.executor.batch():
                for symbol in self.states:
                    read = positions[symbol]
                    event = self.reader.reconciled(
                        symbol, view, book, read, todays_fills, recent.get(symbol, ())
                    )
                    self._step(symbol, event)
        except BrokerAuthError:
            raise
        except BrokerError as exc:
            # Soon: until a reconcile succeeds a restarted bot knows neither its session nor its position,
            # so it cannot flatten at close - 5 min (the fault suite caught a minute's wait doing that).
            log.warning("reconcile failed (%s); retrying in %ds", exc, RECONCILE_RETRY.seconds)
            self._sleep_until = self.clock.now() + RECONCILE_RETRY
            self._need_reconcile = False
            self._next_reconcile = self._sleep_until
            self._publish()  # the failures show (no machine stepped)
            return
        self._need_reconcile = False
        if not self._heap_frozen:
            # The start's heap (imports, the SDK, a journal of years of fills: 100k records are ~200k
            # objects) lives for the whole run. Frozen, a full collection stops walking it on this
            # thread between a bar and its order (~100 ms per collection at 100k records).
            gc.collect()
            gc.freeze()
            self._heap_frozen = True  # (a flag: gc.get_freeze_count() walks the whole frozen heap)
        now = self.clock.now()
        self._next_reconcile = now + self.options.reconcile_every
        # The minute's poll stays on time when a reconcile comes first (at :00, the poll at :02) or falls
        # due during it: its bar may be a breakout, and a minute later the entry would be a bar late. A
        # poll more than a minute old (a sleep, a new day) is dropped.
        if self._next_poll is not None and self._next_poll <= now - BAR_LENGTH:
            self._next_poll = None

    def _poll_fills(self) -> bool:
        """Record the fills the stream missed; False when the ledger could not be read."""
        activities = self.ledger.read_new(self.clock.now())
        if activities is None:
            return False
        self._apply_fills(activities)
        return True

    def _apply_fills(self, activities: list[FillActivity]) -> None:
        for update in self.ledger.updates_from(activities, self.states):
            self._deliver(update, "rest")

    def _poll_positions(self, symbols: list[str], now: datetime) -> None:
        """`symbols`' positions from one read of every position (GET /v2/positions), each stepped as
        PositionChanged; a symbol whose figure differs from its machine's is read again with the
        executions it holds."""
        if not symbols:
            return
        try:
            held = self.broker.list_positions()
        except BrokerError as exc:
            # A failed read is not proof of flat: tell the machines nothing.
            log.warning("position read failed: %s", exc)
            return
        # The broker holds what the fills have not told yet: which executions does it hold?
        differing: dict[str, date] = {}
        for symbol in symbols:
            state = self.states[symbol]
            if held.get(symbol, Decimal(0)) != state.position_qty and state.session is not None:
                differing[symbol] = state.session.date
        reads: dict[str, PositionRead] = {}
        for day in sorted(set(differing.values())):
            try:
                reads.update(self.reader.positions_now([s for s, d in differing.items() if d == day], day))
            except BrokerError as exc:
                log.warning("position read failed: %s", exc)
                return
        for symbol in symbols:
            read = reads.get(symbol)
            if read is None:
                self._step(symbol, PositionChanged(now, held.get(symbol, Decimal(0)), ()))
            else:
                self._step(symbol, PositionChanged(now, read.qty, read.reflected))

    # ------------------------------------------------------------------ the queue
    def _next_event(self, timeout: float) -> QueueItem | None:
        """The one place the queue is read: the next item within `timeout` wall seconds (at most 1 s), or None."""
        try:
            if timeout <= 0:
                return self._events.get_nowait()
            return self._events.get(timeout=min(timeout, 1.0))
        except queue.Empty:
            return None

    def _handle_events_for(self, wall_seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        """Handle whatever the streams deliver during the next `wall_seconds` (wall time), or until
        `until()` holds."""
        deadline = time.monotonic() + wall_seconds
        while not until() and (left := deadline - time.monotonic()) > 0:
            item = self._next_event(left)
            if item is not None:
                self._handle_queued(item)

    def _on_trade_stream(self, status: StreamStatus, detail: str) -> None:
        self._events.put(StreamEvent(status, detail))

    def _handle_queued(self, item: QueueItem) -> None:
        if isinstance(item, BarEvent):
            state = self.states.get(item.symbol)
            if state is not None and state.session is not None:
                bars = self.feed.streamed(item.symbol, item.bar, state.session)
                if self._in_order:
                    self._held_bars.setdefault(item.symbol, []).extend(bars)
                else:
                    self._step_bars(item.symbol, bars)
            return
        if isinstance(item, StreamEvent) and item.stream == "bars":
            if item.status == "refused":
                # 406 (another connection uses these keys on this feed) or 409 (the plan lacks the
                # feed): the SDK would reconnect forever; the stream has stopped, the minute poll goes on.
                if not self._bars_refused:
                    log.warning("bar stream stopped: %s; bars are polled over REST every minute", item.detail)
                self._bars_refused = True
                return
            log.info("bar stream %s %s", item.status, item.detail)  # the minute poll covers any gap
            return
        if isinstance(item, StreamEvent):
            if item.status == "auth_failed":
                raise BrokerAuthError(f"trade stream refused our keys: {item.detail}")
            was_up = self.stream_up
            self.stream_up = item.status == "connected"
            log.info("trade stream %s %s", item.status, item.detail)
            if self.stream_up and not was_up:
                self._need_reconcile = True  # whatever happened while we were deaf, the REST ledger knows
            return
        if item.order.symbol in self.states:
            self._deliver(item, "stream")
            if self._searching():
                self.gate.prefetch_if_stale()  # a fill made the read stale: read it while nothing waits

    def _searching(self) -> bool:
        return any(s.phase is SEARCHING for s in self.states.values())

    # ------------------------------------------------------------------ the machines
    def _step_bars(self, symbol: str, bars: list[Bar]) -> None:
        """Closed bars, oldest first, after the time: a machine that first heard of it through the bars
        would take a backlog (after a stall, a reconnect, a slow feed) for the present and trade on it."""
        if not bars:
            return
        self._step(symbol, Tick(self.clock.now()))
        for bar in bars:
            self._step(symbol, BarClosed(bar))

    def _deliver(self, update: OrderUpdate, source: Source) -> None:
        """An order update, if it is news to the machines (the ledger judges)."""
        if self.ledger.is_news(update):
            self._step(update.order.symbol, update, source)

    def _step(self, symbol: str, event: Event, source: Source = "rest") -> None:
        """Step `symbol`'s machine through `event`, then through what its actions lead to, in order."""
        work: deque[tuple[Event, Source]] = deque([(event, source)])
        while work:
            event, source = work.popleft()
            before = self.states[symbol]
            state, actions = machine.step(before, event)
            self.states[symbol] = state
            if state.phase is not before.phase:
                # The clock's time too: in a simulated run it is not the log line's (wall) time.
                when = self.clock.now().astimezone(NEW_YORK).isoformat(timespec="seconds")
                log.info("%s: %s -> %s at %s", symbol, before.phase.value, state.phase.value, when)
            for action in actions:
                if isinstance(action, SleepUntil):
                    self._sleep(symbol, action)
                    continue
                if isinstance(action, WakeAt):
                    self._wakes[symbol] = action.when  # the machine's one retry: the latest replaces it
                    continue
                for follow_up in self.executor.execute(symbol, action, source):
                    if isinstance(follow_up, ReconcileNow):
                        self._need_reconcile = True
                    elif not isinstance(follow_up, OrderUpdate) or self.ledger.is_news(follow_up):
                        work.append((follow_up, "rest"))
            if state.phase is DONE_FOR_THE_DAY and state.session is not None:
                self._sessions_done.add(state.session.date)
            self._publish()

    def _sleep(self, symbol: str, action: SleepUntil) -> None:
        if (
            self._sleep_until is None
            or action.when < self._sleep_until
            or self._sleep_until <= self.clock.now()
        ):
            self._sleep_until = action.when
        log.info("%s: sleeping until %s (%s)", symbol, action.when.astimezone(NEW_YORK), action.reason)

    def _publish(self) -> None:
        if not self._observers:
            return
        health = self.health
        if health.keys_refused is None:
            self._keys_refused = None  # a call succeeded since: the keys are accepted again
        refused = self._keys_refused
        status = RunnerStatus(
            self.clock.now(),
            self.stream_up,
            tuple(self.states.values()),
            self.gate.equity,
            self.gate.limits(),
            health.failures,
            health.last_error,
            refused,
        )
        for observer in self._observers:
            observer(status)


def _nothing_today(view: MarketView) -> str:
    today = view.day_start.date()
    if view.over is not None:
        return (
            f"today's session ({today}) is over: nothing to trade (--once trades today's session or nothing)"
        )
    return (
        f"market closed today ({today:%a %Y-%m-%d}): nothing to trade; the next session opens "
        f"{view.next_open.astimezone(NEW_YORK):%a %Y-%m-%d %H:%M} New York time"
    )


def _next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)
