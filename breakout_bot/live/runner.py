"""The imperative shell: turns clock ticks, closed bars and trade updates into machine events, steps the
machine, and executes its actions against a Broker. It never decides strategy.

One runner drives one machine per symbol over one broker, one trade_updates stream and one journal.
The broker is the source of truth: we reconcile over REST at start, after every stream (re)connection,
on a timer, and every minute we read new FILL activities (the stream is a hint, not the ledger).
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from ..broker.base import AccountInfo, Broker, FillActivity, MarketData, StreamHandle, StreamStatus
from ..core import events as ev
from ..core import machine
from ..core.ids import parse_client_order_id
from ..core.model import (
    BAR_LENGTH,
    DEAD_STATUSES,
    FILL_EVENTS,
    Bar,
    Fill,
    OrderEvent,
    OrderSnapshot,
    OrderStatus,
    Session,
)
from ..core.params import Params
from ..core.state import Phase, State, initial_state
from ..errors import BrokerAuthError, BrokerError, BrokerNotFound, BrokerRejected
from ..journal import FillRecord, Journal
from ..roundtrips import FillLike, todays_realized
from .clock import Clock
from .halt import halt_path, halted_on
from .status import status_line

log = logging.getLogger("breakout_bot.runner")
NEW_YORK = ZoneInfo("America/New_York")
CLOSE_CHECKS = 6  # position reads after each close request ...
CLOSE_CHECK_SECONDS = 5.0  # ... this far apart (clock seconds): a market close fills at the next trade
LEDGER_DOWN_GRACE_S = 3.0  # wall seconds for the stream's last fills when the ledger is unreadable at exit
GIVE_UP_AFTER_CLOSE = timedelta(minutes=10)  # a position still open this long after the close: exit anyway
RECONCILE_RETRY = timedelta(seconds=15)  # after a failed reconcile (each call already retried with backoff)


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    poll_delay: timedelta = timedelta(seconds=2)  # after a minute closes, before asking for its bar
    reconcile_every: timedelta = timedelta(minutes=15)
    days: int | None = 1  # sessions to trade before exiting; None = forever
    verify_flat_attempts: int = 3
    stream: bool = True
    bars_stream: bool = False  # bars pushed by the market-data websocket; the minute poll only fills gaps
    # Checked after every handled event/wake: True makes run() return at once, without cleanup (tests use
    # it to "crash" the bot at a chosen moment).
    stop_when: Callable[[Runner], bool] | None = None
    stream_start_timeout: float = 10.0  # wall seconds to wait for the trade stream before trading


@dataclass(slots=True)
class _StreamEvent:
    status: StreamStatus
    detail: str
    stream: str = "trading"


@dataclass(frozen=True, slots=True)
class _BarEvent:
    symbol: str
    bar: Bar


QueueItem = ev.OrderUpdate | _StreamEvent | _BarEvent


StatusSink = Callable[[list[dict[str, str]], str], None]


def fill_key(order_id: str, cum_qty: Decimal | None, execution_id: str) -> str:
    """One execution seen through the stream and through REST activities gets the same key:
    an order's cumulative filled quantity after an execution identifies that execution."""
    return f"{order_id}@{cum_qty.normalize()}" if cum_qty is not None else execution_id


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
        status: StatusSink | None = None,
    ) -> None:
        self.broker = broker
        self.data = data
        self.clock = clock
        self.journal = journal
        self.params = params
        self.options = options or RunnerOptions()
        self.states: dict[str, State] = {s: initial_state(s, params) for s in symbols}
        self._status = status
        self._events: queue.Queue[QueueItem] = queue.Queue()
        self._stream: StreamHandle | None = None
        self._bar_stream: StreamHandle | None = None
        self._stream_up = not self.options.stream
        self._seen_fills: set[str] = set()
        self._orders: dict[str, OrderSnapshot] = {}
        self._sleep_until: datetime | None = None
        self._last_bar: dict[str, datetime] = {}
        self._next_poll: datetime | None = None
        self._next_reconcile: datetime | None = None
        self._activities_since: datetime | None = None
        self._sessions_done: set[date] = set()
        self._need_reconcile = True
        self._stop = False
        # The risk gate's view of the account: read ahead of entries (once a minute while searching) so
        # that a breakout goes out without an extra round trip; dropped after every fill and order.
        self._account: AccountInfo | None = None
        self._account_read_at: datetime | None = None
        for record in journal.records():
            self._remember_fill(record.order_id, _dec(record.cum_qty), record.id)

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        self._stop = True

    def run(self) -> int:
        """Trade until `options.days` sessions are done (or forever). Returns an exit code."""
        if self.options.stream:
            self._stream = self.broker.stream_trade_updates(self._events.put, self._on_stream_status)
            self._await_stream()
        if self.options.bars_stream:
            self._bar_stream = self.data.stream_bars(
                list(self.states),
                lambda symbol, bar: self._events.put(_BarEvent(symbol, bar)),
                lambda status, detail: self._events.put(_StreamEvent(status, detail, "bars")),
            )
        try:
            while not self._stop:
                if self.options.stop_when is not None and self.options.stop_when(self):
                    return 0
                if self._need_reconcile:
                    self._reconcile()
                    continue
                if self._finished() and self._settled():
                    return 0
                wake = self._next_wake()
                item = self._next_event(self.clock.wall_timeout(wake))
                if item is not None:
                    self._handle_queued(item)
                    continue
                if self.clock.now() < wake:
                    self.clock.reached(wake)
                    if self.clock.now() < wake:
                        continue
                self._on_wake()
            return 0
        finally:
            for handle in (self._stream, self._bar_stream):
                if handle is not None:
                    handle.stop()

    def _await_stream(self) -> None:
        """Give the trade stream its first connection attempt before trading (wall seconds, bounded).

        On a stepped clock virtual time only moves when we wait: without this, a session could run for
        virtual minutes while the websocket is still connecting, entries blocked meanwhile, and a
        simulated run would depend on thread timing."""
        deadline = time.monotonic() + self.options.stream_start_timeout
        while not self._stream_up and (left := deadline - time.monotonic()) > 0:
            try:
                item = self._events.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            self._handle_queued(item)
            if isinstance(item, _StreamEvent) and item.stream == "trading":
                return  # connected, or failed: either way the loop below knows

    def _settled(self) -> bool:
        """Before exiting: sweep the ledger once more (the flatten's fill must reach the journal) and
        make sure we leave flat; a position still open keeps us here (bounded by the session close)."""
        ledger_read = self._poll_fills()
        now = self.clock.now()
        for symbol, state in self.states.items():
            if state.position_qty != 0:
                self._poll_position(symbol, now)
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
        self.clock.sleep(CLOSE_CHECK_SECONDS)
        return False

    def _finished(self) -> bool:
        days = self.options.days
        if days is None:
            return False
        if len(self._sessions_done) < days or not all(
            s.phase is Phase.DONE_FOR_THE_DAY for s in self.states.values()
        ):
            return False
        # Done for the day is not the end while a flatten is still working: stay (polling fills and the
        # position) until flat, or the session is over, so the closing fill reaches the journal.
        now = self.clock.now()
        return all(
            s.position_qty == 0 or s.session is None or now >= s.session.close for s in self.states.values()
        )

    def _next_event(self, timeout: float) -> QueueItem | None:
        try:
            if timeout <= 0:
                return self._events.get_nowait()
            return self._events.get(timeout=min(timeout, 1.0))
        except queue.Empty:
            return None

    # ------------------------------------------------------------------ scheduling

    def _next_wake(self) -> datetime:
        now = self.clock.now()
        candidates = []
        if self._trading_phases():
            if self._next_poll is None:
                self._next_poll = _next_minute(now) + self.options.poll_delay
            candidates.append(self._next_poll)
            if self._next_reconcile is not None:
                candidates.append(self._next_reconcile)
        if self._sleep_until is not None:
            candidates.append(self._sleep_until)
        if not candidates:
            candidates.append(now + timedelta(minutes=1))
        return min(candidates)

    def _trading_phases(self) -> bool:
        return any(s.phase is not Phase.DONE_FOR_THE_DAY for s in self.states.values()) or any(
            s.position_qty != 0 for s in self.states.values()
        )

    def _on_wake(self) -> None:
        now = self.clock.now()
        if self._sleep_until is not None and now >= self._sleep_until:
            self._sleep_until = None
            if all(s.phase is Phase.DONE_FOR_THE_DAY for s in self.states.values()):
                self._need_reconcile = True  # a new session: read the broker afresh
                return
        if self._next_reconcile is not None and now >= self._next_reconcile:
            self._need_reconcile = True
            return
        if self._next_poll is not None and now >= self._next_poll:
            self._next_poll = _next_minute(now) + self.options.poll_delay
            self._minute(now)
        for symbol in self.states:
            self._step(symbol, ev.Tick(now))

    def _minute(self, now: datetime) -> None:
        """Once a minute: fills from the ledger first, then positions, then bars, as the backtest orders them."""
        closed_bar = now.replace(second=0, microsecond=0) - BAR_LENGTH  # start of the bar that just closed
        if self.options.bars_stream:
            self._await_streamed_bars(closed_bar)
        self._poll_fills()
        for symbol, state in self.states.items():
            if state.phase is Phase.ACTIVE_TRADE or (state.flattened and state.position_qty != 0):
                self._poll_position(symbol, now)
        if any(s.phase is Phase.SEARCHING for s in self.states.values()):
            self._account_for_gate(max_age=timedelta(0))
        for symbol, state in self.states.items():
            if state.session is None or state.phase is Phase.DONE_FOR_THE_DAY:
                continue
            last = self._last_bar.get(symbol)
            if self.options.bars_stream and last is not None and last >= closed_bar:
                continue  # the websocket delivered it: no REST poll needed
            self._poll_bars(symbol, state.session, now)

    def _handle_events_for(self, wall_seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        """Handle whatever the streams deliver during the next `wall_seconds` (wall time), or until
        `until()` holds."""
        deadline = time.monotonic() + wall_seconds
        while not until() and (left := deadline - time.monotonic()) > 0:
            try:
                item = self._events.get(timeout=left)
            except queue.Empty:
                return
            self._handle_queued(item)

    def _await_streamed_bars(self, closed_bar: datetime, wall_limit: float = 0.05) -> None:
        """Give the bar websocket a moment (wall time) to deliver the bar that just closed, handling
        whatever arrives meanwhile; a bar still missing then is fetched over REST."""
        active = [s for s, st in self.states.items() if st.phase is not Phase.DONE_FOR_THE_DAY]
        self._handle_events_for(
            wall_limit,
            until=lambda: all(
                (self._last_bar.get(s) or closed_bar - BAR_LENGTH) >= closed_bar for s in active
            ),
        )

    def _account_for_gate(self, max_age: timedelta) -> AccountInfo | None:
        """The account, read now unless a read younger than `max_age` is cached. None when unreadable."""
        now = self.clock.now()
        if self._account is None or self._account_read_at is None or now - self._account_read_at > max_age:
            try:
                self._account = self.broker.get_account()
                self._account_read_at = now
            except BrokerError as exc:
                log.warning("account unreadable: %s", exc)
                self._account = None
        return self._account

    def _prefetch_account(self) -> None:
        """A fill made the cached account stale and a symbol is searching again: read it now, while
        nothing waits on it, so that the next entry's risk gate sends the order without a request first."""
        if self._account is None and any(s.phase is Phase.SEARCHING for s in self.states.values()):
            self._account_for_gate(max_age=timedelta(0))

    # ------------------------------------------------------------------ reads

    def _reconcile(self) -> None:
        """Read the broker's truth and hand it to every machine (start, reconnect, timer, new session)."""
        try:
            clock = self.broker.get_clock()
            today = clock.timestamp.astimezone(NEW_YORK).date()
            sessions = self.broker.get_sessions(today, today + timedelta(days=10))
            session = next((s for s in sessions if s.date == today), None)
            later = [s for s in sessions if s.open > clock.timestamp]
            next_open = later[0].open if later else clock.next_open
            if session is not None and clock.timestamp >= session.close:
                self._sessions_done.add(session.date)
                session = None
            day_start = datetime.combine(today, datetime.min.time(), NEW_YORK)
            todays_fills = self._todays_fills(day_start)
            open_orders = self.broker.list_open_orders()
            equity = float(self.broker.get_account().equity) if self.params.risk_pct is not None else 0.0
            todays_orders = self.broker.list_orders_since(day_start - timedelta(hours=12))
            for symbol in self.states:
                self._reconcile_symbol(
                    symbol,
                    clock.timestamp,
                    session,
                    next_open,
                    open_orders,
                    todays_orders,
                    todays_fills,
                    equity,
                )
        except BrokerAuthError:
            raise
        except BrokerError as exc:
            # Soon: until a reconcile succeeds a restarted bot knows neither its session nor its position,
            # so it cannot flatten at close - 5 min (the fault suite caught a minute's wait doing that).
            log.warning("reconcile failed (%s); retrying in %ds", exc, RECONCILE_RETRY.seconds)
            self._sleep_until = self.clock.now() + RECONCILE_RETRY
            self._need_reconcile = False
            self._next_reconcile = self._sleep_until
            return
        self._need_reconcile = False
        now = self.clock.now()
        self._next_reconcile = now + self.options.reconcile_every
        # The minute's poll stays on time when a reconcile comes first (at :00, the poll at :02) or falls
        # due during it: its bar may be a breakout, and a minute later the entry would be a bar late. A
        # poll more than a minute old (a sleep, a new day) is dropped.
        if self._next_poll is not None and self._next_poll <= now - BAR_LENGTH:
            self._next_poll = None

    def _todays_fills(self, day_start: datetime) -> list[FillActivity] | None:
        """Today's fills at the broker: the missed ones are recorded now, and all of them give each
        symbol its realized P&L (the daily loss limit must survive a restart). None when unreadable:
        the reconcile goes on (a position must still be managed), the P&L stays as the machine has it."""
        try:
            activities = self.broker.fill_activities(day_start - timedelta(seconds=1))
        except BrokerError as exc:
            log.warning("today's fills unreadable (%s): realized P&L unknown until the next reconcile", exc)
            return None
        todays = [a for a in activities if a.transaction_time >= day_start]
        self._apply_fill_activities(todays)
        return todays

    def _reconcile_symbol(
        self,
        symbol: str,
        now: datetime,
        session: Session | None,
        next_open: datetime,
        open_orders: list[OrderSnapshot],
        todays_orders: list[OrderSnapshot],
        todays_fills: list[FillActivity] | None,
        equity: float = 0.0,
    ) -> None:
        ours_today = []
        for order in todays_orders:
            parsed = parse_client_order_id(order.client_order_id)
            if parsed and parsed[0] == symbol and session is not None and parsed[1] == session.date:
                ours_today.append((parsed[2], order))
        entries_sent = max((n for n, _ in ours_today), default=0)
        trades = sum(1 for _, o in ours_today if o.filled_qty > 0)
        position = self.broker.get_position_qty(symbol)
        realized: Decimal | None = None
        average: Decimal | None = None
        if todays_fills is not None:
            realized, average = todays_realized(
                [
                    FillLike(f.symbol, f.side, f.qty, f.price, f.transaction_time)
                    for f in todays_fills
                    if f.symbol == symbol
                ],
                position,
            )
        last = self._last_bar.get(symbol)
        if last is not None and (session is None or last < session.open):
            del self._last_bar[symbol]  # yesterday's bars say nothing about today's box
            last = None
        recent: tuple[Bar, ...] = ()
        # History for the box only when this session's bars have not reached the machine yet (start, new
        # day). Later reconciles leave new bars to the minute's poll: a breakout bar merged here as
        # history would never be acted on.
        if session is not None and session.open < now and last is None:
            start = max(session.open, now - timedelta(minutes=self.params.lookback + 5))
            recent = tuple(b for b in self.data.get_bars(symbol, start, now) if b.end <= now)
            if recent:
                self._last_bar[symbol] = recent[-1].t
        event = ev.Reconciled(
            now=now,
            session=session,
            next_open=next_open,
            position_qty=position,
            open_orders=tuple(o for o in open_orders if o.symbol == symbol),
            entries_sent_today=entries_sent,
            trades_today=trades,
            realized_pnl_today=None if realized is None else float(realized),
            recent_bars=recent,
            equity=equity,
            avg_entry_price=average,
        )
        self._step(symbol, event)

    def _cancel_one(self, symbol: str, order_id: str) -> None:
        self._call(f"{symbol}: cancel stray order {order_id}", lambda: self.broker.cancel_order(order_id))

    def _poll_fills(self) -> bool:
        """Record the fills the stream missed; False when the ledger could not be read."""
        start = self._activities_since
        if start is None:
            start = self.clock.now() - timedelta(hours=1)
        try:
            activities = self.broker.fill_activities(start - timedelta(seconds=1))
        except BrokerError as exc:
            log.warning("could not read fill activities: %s", exc)
            return False
        self._apply_fill_activities(activities)
        return True

    def _apply_fill_activities(self, activities: list[FillActivity]) -> None:
        """Hand the machines the fills they have not seen (the stream may have missed them)."""
        for activity in activities:
            self._activities_since = max(
                self._activities_since or activity.transaction_time, activity.transaction_time
            )
            if activity.symbol not in self.states:
                continue
            if self._fill_seen(activity.order_id, activity.cum_qty, activity.execution_id):
                continue
            update = self._update_from_activity(activity)
            if update is not None:
                self._handle_update(update, source="rest")

    def _update_from_activity(self, activity: FillActivity) -> ev.OrderUpdate | None:
        order = self._orders.get(activity.order_id)
        if order is None:
            try:
                order = self.broker.get_order(activity.order_id)
            except BrokerError as exc:
                log.warning("fill %s: order %s unreadable: %s", activity.id, activity.order_id, exc)
                return None
            self._orders[order.id] = order
        done = activity.leaves_qty == 0
        order = replace(
            order,
            filled_qty=activity.cum_qty,
            status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
        )
        return ev.OrderUpdate(
            event=OrderEvent.FILL if done else OrderEvent.PARTIAL_FILL,
            order=order,
            timestamp=activity.transaction_time,
            execution_id=activity.execution_id,
            qty=activity.qty,
            price=activity.price,
        )

    def _poll_position(self, symbol: str, now: datetime) -> None:
        try:
            qty = self.broker.get_position_qty(symbol)
        except BrokerError as exc:
            # A failed read is not proof of flat: tell the machine nothing.
            log.warning("%s: position read failed: %s", symbol, exc)
            return
        self._step(symbol, ev.PositionChanged(now, qty))

    def _poll_bars(self, symbol: str, session: Session, now: datetime) -> None:
        last = self._last_bar.get(symbol)
        start = session.open if last is None else last + BAR_LENGTH
        if start >= now:
            return
        try:
            bars = self.data.get_bars(symbol, start, now)
        except BrokerError as exc:
            log.warning("%s: bars unavailable: %s", symbol, exc)
            return
        for bar in bars:
            if bar.end > now or (last is not None and bar.t <= last):
                continue  # a bar still forming is not closed
            self._last_bar[symbol] = last = bar.t
            self._step(symbol, ev.BarClosed(bar))

    # ------------------------------------------------------------------ stream

    def _on_streamed_bar(self, symbol: str, bar: Bar) -> None:
        state = self.states.get(symbol)
        last = self._last_bar.get(symbol)
        if state is None or state.session is None or (last is not None and bar.t <= last):
            return
        if last is not None and bar.t > last + BAR_LENGTH:
            self._poll_bars(symbol, state.session, bar.t)  # a gap: fetch the missing bars first, in order
        self._last_bar[symbol] = bar.t
        self._step(symbol, ev.BarClosed(bar))

    def _on_stream_status(self, status: StreamStatus, detail: str) -> None:
        self._events.put(_StreamEvent(status, detail))

    def _handle_queued(self, item: QueueItem) -> None:
        if isinstance(item, _BarEvent):
            self._on_streamed_bar(item.symbol, item.bar)
            return
        if isinstance(item, _StreamEvent) and item.stream == "bars":
            log.info("bar stream %s %s", item.status, item.detail)  # the minute poll covers any gap
            return
        if isinstance(item, _StreamEvent):
            if item.status == "auth_failed":
                raise BrokerAuthError(f"trade stream refused our keys: {item.detail}")
            was_up = self._stream_up
            self._stream_up = item.status == "connected"
            log.info("trade stream %s %s", item.status, item.detail)
            if self._stream_up and not was_up:
                self._need_reconcile = True  # whatever happened while we were deaf, the REST ledger knows
            return
        if item.order.symbol in self.states:
            self._handle_update(item, source="stream")
            self._prefetch_account()

    def _handle_update(self, update: ev.OrderUpdate, source: str) -> None:
        if update.event in FILL_EVENTS:
            execution = update.execution_id or ""
            if self._fill_seen(update.order.id, update.order.filled_qty or None, execution):
                return
        else:
            known = self._orders.get(update.order.id)
            if known is not None and known.filled_qty > update.order.filled_qty:
                # The stream lags the REST ledger: a `new` for an entry we already saw fill (and exit) is
                # old news; handing it on would make the machine adopt a dead entry.
                log.debug("stale %s for %s ignored", update.event, update.order.client_order_id)
                return
        self._orders[update.order.id] = update.order
        self._step(update.order.symbol, update, source=source)

    def _fill_seen(self, order_id: str, cum_qty: Decimal | None, execution_id: str) -> bool:
        return (
            fill_key(order_id, cum_qty, execution_id) in self._seen_fills or execution_id in self._seen_fills
        )

    def _remember_fill(self, order_id: str, cum_qty: Decimal | None, execution_id: str) -> None:
        self._seen_fills.add(fill_key(order_id, cum_qty, execution_id))
        if execution_id:
            self._seen_fills.add(execution_id)

    # ------------------------------------------------------------------ machine

    def _step(self, symbol: str, event: ev.Event, source: str = "rest") -> None:
        before = self.states[symbol]
        state, actions = machine.step(before, event)
        self.states[symbol] = state
        if state.phase is not before.phase:
            log.info("%s: %s -> %s", symbol, before.phase.value, state.phase.value)
        for action in actions:
            self._execute(symbol, action, source)
        if state.phase is Phase.DONE_FOR_THE_DAY and state.session is not None:
            self._sessions_done.add(state.session.date)
        self._publish_status()

    def _execute(self, symbol: str, action: ev.Action, source: str) -> None:
        if isinstance(action, ev.Log):
            log.log(logging.getLevelName(action.level.upper()), action.message)
        elif isinstance(action, ev.RecordFill):
            self._record(action.fill, source)
        elif isinstance(action, ev.SubmitBracket):
            self._submit(symbol, action)
        elif isinstance(action, ev.CancelOrder):
            self._cancel_one(symbol, action.order_id)
        elif isinstance(action, ev.CancelAll):
            self._call(f"{symbol}: cancel orders", lambda: self.broker.cancel_orders(action.symbol))
        elif isinstance(action, ev.CloseAll):
            self._close(action)
        elif isinstance(action, ev.SleepUntil):
            if (
                self._sleep_until is None
                or action.when < self._sleep_until
                or self._sleep_until <= self.clock.now()
            ):
                self._sleep_until = action.when
            log.info("%s: sleeping until %s (%s)", symbol, action.when.astimezone(NEW_YORK), action.reason)

    def _record(self, fill: Fill, source: str) -> None:
        self._account = None  # a fill changes cash and buying power
        record = FillRecord(
            id=fill.execution_id,
            order_id=fill.order_id,
            client_order_id=fill.client_order_id,
            symbol=fill.symbol,
            side=fill.side,
            qty=str(fill.qty),
            price=str(fill.price),
            timestamp=fill.timestamp.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
            leg=fill.leg,
            source=source,
            cum_qty=str(fill.cum_qty) if fill.cum_qty is not None else None,
        )
        self._remember_fill(fill.order_id, fill.cum_qty, fill.execution_id)
        if self.journal.append(record):
            log.info(
                "journal: %s %s %s @ %s (%s, %s)",
                fill.symbol,
                fill.side,
                fill.qty,
                fill.price,
                fill.leg,
                source,
            )

    def _submit(self, symbol: str, order: ev.SubmitBracket) -> None:
        if not self._stream_up:
            log.warning("%s: trade stream down; entry blocked until it reconnects", symbol)
            self._step(symbol, ev.SubmitFailed(order.client_order_id, "trade stream down"))
            return
        reason = self._risk_gate(order)
        if reason is not None:
            self._step(symbol, ev.SubmitFailed(order.client_order_id, reason))
            return
        try:
            outcome = self.broker.submit_bracket(order)
        except BrokerAuthError:
            raise
        except BrokerError as exc:
            log.error("%s: entry %s outcome unknown: %s", symbol, order.client_order_id, exc)
            self._need_reconcile = True  # the broker will tell us whether it arrived
            return
        if outcome.status == "rejected":
            self._step(symbol, ev.SubmitFailed(order.client_order_id, outcome.reason))
        elif outcome.status == "accepted" and outcome.order is not None:
            log.info("%s: entry %s accepted as %s", symbol, order.client_order_id, outcome.order.id)
            self._handle_update(
                ev.OrderUpdate(
                    event=OrderEvent.ACCEPTED if outcome.order.is_open else OrderEvent.OTHER,
                    order=outcome.order,
                    timestamp=self.clock.now(),
                ),
                source="rest",
            )
        else:
            log.error(
                "%s: entry %s outcome unknown (%s); reconciling",
                symbol,
                order.client_order_id,
                outcome.reason,
            )
            self._need_reconcile = True

    def _risk_gate(self, order: ev.SubmitBracket) -> str | None:
        """Every order passes here: account must trade, buying power must cover it."""
        # Read afresh after every order and fill (they set it to None) and prefetched once a minute
        # while searching, after that minute's bars: a 2-minute bound lets the entry use that read
        # (at 1 minute it was always a hair too old, and the entry paid a request before its POST).
        account = self._account_for_gate(max_age=timedelta(minutes=2))
        if account is None:
            return "account unreadable"
        self._account = None  # this order changes buying power: the next entry reads it afresh
        if account.trading_blocked:
            return "account trading is blocked"
        halted = halted_on(halt_path(self.journal.path), self.clock.now().astimezone(NEW_YORK).date())
        if halted is not None:
            return f"kill switch: {halted}"
        # The breakout level is within a tick or two of where a market entry fills.
        box = order.box
        level = None if box is None else box.high if order.side == "buy" else box.low
        price = Decimal(str(level)) if level is not None else order.take_profit_price
        needed = price * order.qty
        if account.buying_power < needed:
            return f"buying power {account.buying_power} < {needed:.2f} needed"
        if order.side == "sell" and not account.shorting_enabled:
            return "shorting is not enabled on this account"
        return None

    def _close(self, action: ev.CloseAll) -> None:
        """Close the position and wait (bounded, on this clock) until the broker reports it flat.

        A market close fills at the next trade, seconds away: re-sending DELETE /v2/positions while it
        works only earns a 403 "insufficient qty available" (the working close holds the shares)."""
        symbol = action.symbol
        attempt = 0
        for attempt in range(1, self.options.verify_flat_attempts + 1):
            order: OrderSnapshot | None = None
            try:
                order = self.broker.close_position(symbol)
                if order is not None and order.status is OrderStatus.REJECTED:
                    # Refused outright: nothing is working, so waiting would only let the close slip.
                    log.warning("%s: close order %s rejected; sending another", symbol, order.id)
                    continue
            except BrokerAuthError:
                raise
            except BrokerRejected as exc:
                log.info(
                    "%s: close position (%s): %s; a close is already working", symbol, action.reason, exc
                )
            except BrokerError as exc:
                log.error("%s: close position (%s) failed: %s", symbol, action.reason, exc)
                self._need_reconcile = True
            for _ in range(CLOSE_CHECKS):
                try:
                    qty = self.broker.get_position_qty(symbol)
                except BrokerError as exc:
                    log.warning("%s: cannot verify flat (attempt %d): %s", symbol, attempt, exc)
                    qty = None
                if qty == 0:
                    log.info("%s: flat", symbol)
                    return
                if order is not None and self._close_died(order.id):
                    break  # rejected or canceled later (Alpaca rejects asynchronously too): send again
                self.clock.sleep(CLOSE_CHECK_SECONDS)
        log.error("%s: still not flat after %d attempts; the next position poll retries", symbol, attempt)

    def _close_died(self, order_id: str) -> bool:
        try:
            status = self.broker.get_order(order_id).status
        except BrokerError:
            return False  # unknown: keep waiting for the position to change
        return status in DEAD_STATUSES

    def _call(self, what: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except BrokerNotFound:
            pass
        except BrokerAuthError:
            raise
        except BrokerError as exc:
            log.error("%s failed: %s", what, exc)
            self._need_reconcile = True

    def _publish_status(self) -> None:
        if self._status is None:
            return
        rows = [status_line(s) for s in self.states.values()]
        stream = "stream up" if self._stream_up else "stream DOWN"
        self._status(rows, f"{self.clock.now().astimezone(NEW_YORK):%Y-%m-%d %H:%M:%S} ET · {stream}")


def _next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _dec(text: str | None) -> Decimal | None:
    return Decimal(text) if text else None
