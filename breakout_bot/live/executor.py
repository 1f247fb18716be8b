"""The executor: carries out the machine's actions against the broker and the journal.

`execute(symbol, action, source) -> list[FollowUp]`: what an action leads to comes back as events for
the machine (a refused entry is a SubmitFailed, an accepted one its OrderUpdate) or as a request to
reconcile; the runner queues them behind the current event, as the backtest's engine does. The
executor never steps a machine. Time actions (SleepUntil) are the runner's: it owns the clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..broker.base import Broker
from ..core.events import (
    Action,
    CancelAll,
    CancelOrder,
    CloseAll,
    EntryNotFound,
    Event,
    Log,
    LookupEntry,
    OrderUpdate,
    RecordFill,
    SubmitBracket,
    SubmitFailed,
)
from ..core.model import DEAD_STATUSES, OrderEvent, OrderSnapshot, OrderStatus
from ..core.search import MAX_SIGNAL_AGE
from ..errors import BrokerAuthError, BrokerError, BrokerNotFound, BrokerRejected
from .clock import Clock
from .ledger import FillLedger, Source
from .risk import RiskGate

log = logging.getLogger(__name__)

CLOSE_CHECKS = 6  # position reads after each close request ...
CLOSE_CHECK_SECONDS = 5.0  # ... this far apart (clock seconds): a market close fills at the next trade


@dataclass(frozen=True, slots=True)
class ReconcileNow:
    """The broker's state is unclear after an action (an outcome unknown, a failed call): read it."""

    reason: str


FollowUp = Event | ReconcileNow

# What an order the broker reports (an accepted POST, a lookup) tells the machine about our entry.
_ENDED = {
    OrderStatus.CANCELED: OrderEvent.CANCELED,
    OrderStatus.EXPIRED: OrderEvent.EXPIRED,
    OrderStatus.REJECTED: OrderEvent.REJECTED,
}


class Executor:
    def __init__(
        self,
        broker: Broker,
        clock: Clock,
        ledger: FillLedger,
        gate: RiskGate,
        stream_up: Callable[[], bool],
        close_attempts: int = 3,
    ) -> None:
        self.broker = broker
        self.clock = clock
        self.ledger = ledger
        self.gate = gate
        self.stream_up = stream_up  # entries wait while the trade stream is down
        self.close_attempts = close_attempts
        self._deferred: list[CloseAll] | None = None  # closes sent whose wait for flat comes later

    def defer_close_waits(self) -> None:
        """Until `finish_closes`: a CloseAll sends its close and leaves its wait for flat for later.
        Several symbols flatten at the same minute, and one symbol's wait (partial fills take tens of
        seconds) must not hold back the next one's close: the fault suite saw a third symbol's close go
        out after close - 4 min."""
        self._deferred = []

    def finish_closes(self) -> list[FollowUp]:
        """Wait for flat on every close deferred since `defer_close_waits`, one symbol after the other
        (their closes all work meanwhile). Each is asked once more: a close already working answers 403
        "insufficient qty available", a filled one 404, and the wait follows either way."""
        deferred, self._deferred = self._deferred or [], None
        return [follow_up for action in deferred for follow_up in self._close(action)]

    def execute(self, symbol: str, action: Action, source: Source) -> list[FollowUp]:
        if isinstance(action, Log):
            log.log(logging.getLevelName(action.level.upper()), action.message)
            return []
        if isinstance(action, RecordFill):
            self.gate.invalidate()  # a fill changes cash and buying power
            self.ledger.record(action.fill, source)
            return []
        if isinstance(action, SubmitBracket):
            return self._submit(symbol, action)
        if isinstance(action, LookupEntry):
            return self._look_up(symbol, action.client_order_id)
        if isinstance(action, CancelOrder):
            return self._call(
                f"{symbol}: cancel stray order {action.order_id}",
                lambda: self.broker.cancel_order(action.order_id),
            )
        if isinstance(action, CancelAll):
            return self._call(f"{symbol}: cancel orders", lambda: self.broker.cancel_orders(action.symbol))
        if isinstance(action, CloseAll):
            return self._close(action)
        raise TypeError(f"not the executor's action: {action!r}")

    def _submit(self, symbol: str, order: SubmitBracket) -> list[FollowUp]:
        cid = order.client_order_id
        if not self.stream_up():
            log.warning("%s: trade stream down; entry blocked until it reconnects", symbol)
            return [SubmitFailed(cid, "trade stream down")]
        reason = self.gate.refusal(order)
        if reason is not None:
            return [SubmitFailed(cid, reason)]
        if order.signal_end is not None and (age := self.clock.now() - order.signal_end) > MAX_SIGNAL_AGE:
            # Decided on a fresh bar, but the process stalled (or the account read crawled) since: the
            # signal is as stale as a late bar's would be (core/search.py, MAX_SIGNAL_AGE).
            log.warning("%s: entry %s not sent: its signal is %d s old", symbol, cid, age.total_seconds())
            return [SubmitFailed(cid, "signal went stale before it could be sent")]
        try:
            outcome = self.broker.submit_bracket(order)
        except BrokerAuthError:
            raise
        except BrokerError as exc:
            log.error("%s: entry %s outcome unknown: %s", symbol, cid, exc)
            return [ReconcileNow("entry outcome unknown")]  # the broker will tell whether it arrived
        if outcome.status == "rejected":
            return [SubmitFailed(cid, outcome.reason)]
        if outcome.status == "accepted" and outcome.order is not None:
            log.info("%s: entry %s accepted as %s", symbol, cid, outcome.order.id)
            return self._reported(outcome.order)
        # Still unknown after the adapter's lookup and re-send: the machine asks again on its clock and
        # gives up in bounded time (core/pending.py); a reconcile may tell sooner.
        log.error("%s: entry %s outcome unknown (%s); reconciling", symbol, cid, outcome.reason)
        return [ReconcileNow("entry outcome unknown")]

    def _look_up(self, symbol: str, cid: str) -> list[FollowUp]:
        """The machine asks for its entry by client_order_id: found, absent, or (an error) no answer."""
        try:
            found = self.broker.get_order_by_client_id(cid)
        except BrokerAuthError:
            raise
        except BrokerError as exc:
            log.warning("%s: entry %s lookup failed: %s", symbol, cid, exc)
            return []  # no answer: the machine asks again, then gives up in bounded time
        if found is None:
            log.warning("%s: entry %s is not at the broker", symbol, cid)
            return [EntryNotFound(cid, self.clock.now())]
        log.info("%s: entry %s found at the broker as %s (%s)", symbol, cid, found.id, found.status.value)
        return self._reported(found)

    def _reported(self, order: OrderSnapshot) -> list[FollowUp]:
        """Our entry as the broker has it: working (accepted), ended, or filled (its executions come from
        the fills ledger, which a reconcile reads at once)."""
        now = self.clock.now()
        if order.is_open:
            return [OrderUpdate(event=OrderEvent.ACCEPTED, order=order, timestamp=now)]
        ended = _ENDED.get(order.status)
        if ended is not None:
            return [OrderUpdate(event=ended, order=order, timestamp=now)]
        return [ReconcileNow(f"entry {order.client_order_id} {order.status.value}")]

    def _close(self, action: CloseAll) -> list[FollowUp]:
        """Close the position and wait (bounded, on this clock) until the broker reports it flat.

        A market close fills at the next trade, seconds away: re-sending DELETE /v2/positions while it
        works only earns a 403 "insufficient qty available" (the working close holds the shares). This
        blocks the runner for up to close_attempts x CLOSE_CHECKS x CLOSE_CHECK_SECONDS clock seconds."""
        symbol = action.symbol
        follow_ups: list[FollowUp] = []
        attempt = 0
        for attempt in range(1, self.close_attempts + 1):
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
                follow_ups = [ReconcileNow("close failed")]
            if self._deferred is not None:  # the others' closes first (`defer_close_waits`)
                self._deferred.append(action)
                return follow_ups
            for _ in range(CLOSE_CHECKS):
                try:
                    qty = self.broker.get_position_qty(symbol)
                except BrokerError as exc:
                    log.warning("%s: cannot verify flat (attempt %d): %s", symbol, attempt, exc)
                    qty = None
                if qty == 0:
                    log.info("%s: flat", symbol)
                    return follow_ups
                if order is not None and self._died(order.id):
                    break  # rejected or canceled later (Alpaca rejects asynchronously too): send again
                self.clock.sleep(CLOSE_CHECK_SECONDS)
        log.error("%s: still not flat after %d attempts; the next position poll retries", symbol, attempt)
        return follow_ups

    def _died(self, order_id: str) -> bool:
        try:
            status = self.broker.get_order(order_id).status
        except BrokerError:
            return False  # unknown: keep waiting for the position to change
        return status in DEAD_STATUSES

    def _call(self, what: str, fn: Callable[[], object]) -> list[FollowUp]:
        try:
            fn()
        except BrokerNotFound:
            pass
        except BrokerAuthError:
            raise
        except BrokerError as exc:
            log.error("%s failed: %s", what, exc)
            return [ReconcileNow(f"{what} failed")]
        return []
