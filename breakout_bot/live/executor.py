"""The executor: carries out the machine's actions against the broker and the journal.

`execute(symbol, action, source) -> list[FollowUp]`: what an action leads to comes back as events for
the machine (a refused entry is a SubmitFailed, an accepted one its OrderUpdate, a close that did not go
through a CloseFailed) or as a request to reconcile; the runner queues them behind the current event, as
the backtest's engine does. The executor never steps a machine and never waits: a retry is the
machine's (CloseFailed -> WakeAt). Time actions (SleepUntil, WakeAt) are the runner's: it owns the clock.

The close (CloseAll), in the order tried:

1. Flat already: nothing to do. A close already working (a market close, or our marketable exit): wait
   for its fill (the machine hears it; the minute's position read asks again).
2. A working take-profit leg holds the shares: replace its limit by a marketable one (a cent beyond the
   stop at worst). The bracket stays whole, so its stop keeps protecting the position until the exit
   fills: Alpaca support's way to close a bracketed position ("replacing the take profit limit ... keeps
   all 3 orders intact", forum t/11938). A replace the broker refuses falls through to 3; one whose
   answer is lost may have landed, so the close comes back as a CloseFailed and the retry reads again.
3. Cancel what holds the shares and close (DELETE /v2/positions/{symbol}). Cancels are requests, done a
   few hundred ms later (forum t/18156; t/813: sometimes seconds or more); meanwhile the close meets 403
   "insufficient qty available" (held_for_orders: alpaca-trade-api-csharp #247), so it comes back as a
   CloseFailed retried within a second, or at once when the legs' `canceled` arrives.

A symbol's reads of its open orders and position go through `SharedRead` (live/shared_read.py): in a
batch (`batch()`: the runner's wakes and reconciles, where many symbols act at once, as at the flatten)
one read of the account serves every symbol until the symbol itself writes; outside one, each symbol
reads its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from ..broker.base import Broker
from ..core.events import (
    Action,
    CancelAll,
    CancelOrder,
    CloseAll,
    CloseFailed,
    EntryNotFound,
    Event,
    Log,
    LookupEntry,
    OrderUpdate,
    PositionChanged,
    ProtectPosition,
    RecordFill,
    SubmitBracket,
    SubmitFailed,
)
from ..core.ids import flatten_client_order_id, is_flatten
from ..core.model import OrderEvent, OrderSnapshot, OrderStatus, OrderType
from ..core.search import MAX_SIGNAL_AGE
from ..core.ticks import MIN_LEG_DISTANCE, round_to_tick
from ..errors import BrokerAuthError, BrokerError, BrokerNotFound, BrokerRejected, InsufficientQty
from .clock import Clock
from .ledger import FillLedger, Source
from .risk import RiskGate
from .shared_read import SharedRead

log = logging.getLogger(__name__)

RETRY_WHILE_CANCELING_S = 1.0  # the shares are still held by orders being canceled: try again this soon
RETRY_AFTER_ERROR_S = 2.0  # the broker did not answer
RETRY_AFTER_REFUSAL_S = 30.0  # the broker refused the close itself
MARKETABLE_PCT = 1.0  # the marketable exit: this far through the latest close (never past the stop)


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
    ) -> None:
        self.broker = broker
        self.clock = clock
        self.ledger = ledger
        self.gate = gate
        self.stream_up = stream_up  # entries wait while the trade stream is down
        self.reads = SharedRead(broker)

    def batch(self) -> AbstractContextManager[None]:
        """Within it, the symbols' reads of open orders and positions share one read (SharedRead)."""
        return self.reads.batch()

    def execute(self, symbol: str, action: Action, source: Source) -> list[FollowUp]:
        if isinstance(action, Log):
            log.log(logging.getLevelName(action.level.upper()), action.message)
            return []
        if isinstance(action, RecordFill):
            self.gate.invalidate()  # a fill changes cash and buying power
            self.ledger.record(action.fill, source)
            return []
        if isinstance(action, SubmitBracket):
            self.reads.wrote(symbol)
            return self._submit(symbol, action)
        if isinstance(action, LookupEntry):
            return self._look_up(symbol, action.client_order_id)
        if isinstance(action, CancelOrder):
            self.reads.wrote(symbol)
            return self._call(
                f"{symbol}: cancel stray order {action.order_id}",
                lambda: self.broker.cancel_order(action.order_id),
            )
        if isinstance(action, CancelAll):
            return self._cancel_all(action.symbol)
        if isinstance(action, CloseAll):
            return self._close(action)
        if isinstance(action, ProtectPosition):
            return self._protect(action)
        raise TypeError(f"not the executor's action: {action!r}")

    def _cancel_all(self, symbol: str) -> list[FollowUp]:
        """Cancel every open order of `symbol`; with nothing open (the shared read says so), no request."""
        try:
            orders = self.reads.open_orders(symbol)
        except BrokerAuthError:
            raise
        except BrokerError as exc:
            log.error("%s: cancel orders failed: %s", symbol, exc)
            return [ReconcileNow(f"{symbol}: cancel orders failed")]
        if not orders:
            return []
        self.reads.wrote(symbol)
        return self._call(f"{symbol}: cancel orders", lambda: self.broker.cancel_orders(symbol, orders))

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
            self.gate.reserve(order)  # it may be working: count its buying power until the next read
            log.error("%s: entry %s outcome unknown: %s", symbol, cid, exc)
            return [ReconcileNow("entry outcome unknown")]  # the broker will tell whether it arrived
        if outcome.status == "rejected":
            return [SubmitFailed(cid, outcome.reason)]
        self.gate.reserve(order)
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
        """Get the position closed without waiting here (module docstring: the order tried)."""
        symbol = action.symbol
        try:
            # The orders first, then the position: a close that fills between the two reads then shows
            # in the position (read the other way round, the position still held the shares while the
            # filled close was gone from the open orders, and a second close sold them again).
            orders = self.reads.open_orders(symbol)
            qty = self.reads.position_qty(symbol)
        except BrokerAuthError:
            raise
        except BrokerError as exc:
            return [CloseFailed(symbol, f"broker unreadable: {exc}", RETRY_AFTER_ERROR_S)]
        if qty == 0:
            log.info("%s: flat", symbol)
            return [PositionChanged(self.clock.now(), Decimal(0))]
        side = "sell" if qty > 0 else "buy"
        mine = [o for o in _flat(orders) if o.symbol in ("", symbol)]
        closing = [o for o in mine if o.side == side and o.is_open]
        if any(o.type is OrderType.MARKET or is_flatten(o.client_order_id) for o in closing):
            log.info("%s: a close is working; waiting for its fill", symbol)
            return []
        replaced = self._replace_take_profit(action, qty, side, closing, mine)
        if replaced is not None:
            return replaced
        return self._cancel_and_close(action, orders if closing else None)

    def _replace_take_profit(
        self,
        action: CloseAll,
        qty: Decimal,
        side: str,
        closing: list[OrderSnapshot],
        mine: list[OrderSnapshot],
    ) -> list[FollowUp] | None:
        """Step 2: the take-profit becomes a marketable limit; None when there is none or it is refused."""
        replace = getattr(self.broker, "replace_order", None)
        take = next(
            (
                o
                for o in closing
                if o.type is OrderType.LIMIT
                and o.status is OrderStatus.NEW
                and o.order_class in ("bracket", "oco")
                and o.qty - o.filled_qty >= abs(qty)
            ),
            None,
        )
        if replace is None or take is None:
            return None
        stop = (
            action.stop_price
            or next((o.stop_price for o in mine if o.side == side and o.stop_price is not None), None)
            or self._held_stop_of(take, action.symbol)
        )
        limit = marketable_limit(side, action.last_price, stop)
        if limit is None:
            return None
        cid = flatten_client_order_id(action.symbol, self.clock.now())
        self.reads.wrote(action.symbol)
        try:
            new = replace(take.id, limit, cid)
        except BrokerAuthError:
            raise
        except BrokerRejected as exc:
            log.warning(
                "%s: replacing the take-profit refused (%s); canceling and closing", action.symbol, exc
            )
            return None
        except BrokerError as exc:
            # Unanswered (a reset, a 5xx, a timeout): the replace may have landed, and a close sent now
            # would sell the shares a second time. The retry reads the orders again: our marketable exit
            # working (step 1) or the take-profit still there (this step again). The stop stays meanwhile.
            return [
                CloseFailed(
                    action.symbol,
                    f"replacing the take-profit: outcome unknown ({exc})",
                    RETRY_WHILE_CANCELING_S,
                )
            ]
        log.info(
            "%s: close (%s): take-profit %s replaced by a marketable limit at %s; the stop works until it fills",
            action.symbol,
            action.reason,
            take.id,
            limit,
        )
        return [OrderUpdate(event=OrderEvent.ACCEPTED, order=new, timestamp=self.clock.now())]

    def _held_stop_of(self, take: OrderSnapshot, symbol: str) -> Decimal | None:
        """The stop price of the take-profit's bracket: its held stop leg is listed only among today's
        orders (status=all), nested under the parent (after a restart the machine does not know it)."""
        try:
            orders = self.broker.list_orders_since(self.clock.now() - timedelta(days=1), symbol)
        except BrokerError:
            return None
        for parent in orders:
            if any(leg.id == take.id for leg in parent.legs):
                return next((leg.stop_price for leg in parent.legs if leg.stop_price is not None), None)
        return None

    def _cancel_and_close(self, action: CloseAll, holding: list[OrderSnapshot] | None) -> list[FollowUp]:
        """Step 3: cancel what holds the shares (`holding`: the symbol's open orders, as just read; None
        when none holds them), then DELETE the position."""
        symbol = action.symbol
        held = holding is not None
        self.reads.wrote(symbol)
        if holding is not None:
            try:
                self.broker.cancel_orders(symbol, holding)
            except BrokerAuthError:
                raise
            except BrokerError as exc:
                log.warning("%s: canceling before the close failed: %s", symbol, exc)
        try:
            order = self.broker.close_position(symbol)
        except BrokerAuthError:
            raise
        except InsufficientQty as exc:
            return [
                CloseFailed(symbol, f"shares still held: {exc}", RETRY_WHILE_CANCELING_S, unprotected=held)
            ]
        except BrokerRejected as exc:
            return [CloseFailed(symbol, str(exc), RETRY_AFTER_REFUSAL_S, unprotected=True, refused=True)]
        except BrokerError as exc:
            return [CloseFailed(symbol, str(exc), RETRY_AFTER_ERROR_S, unprotected=held)]
        if order is None:
            log.info("%s: flat", symbol)
            return [PositionChanged(self.clock.now(), Decimal(0))]
        if order.status is OrderStatus.REJECTED:
            return [CloseFailed(symbol, f"close order {order.id} rejected", RETRY_WHILE_CANCELING_S, held)]
        log.info("%s: close (%s) accepted as %s", symbol, action.reason, order.id)
        return [OrderUpdate(event=OrderEvent.ACCEPTED, order=order, timestamp=self.clock.now())]

    def _protect(self, action: ProtectPosition) -> list[FollowUp]:
        """A stop order for a position nothing protects (its close was refused)."""
        submit = getattr(self.broker, "submit_stop", None)
        if submit is None:
            log.error(
                "%s: this broker adapter cannot send a stop: the position stays unprotected", action.symbol
            )
            return []
        try:
            working = self.reads.open_orders(action.symbol)
            if any(
                o.side == action.side and o.type in (OrderType.STOP, OrderType.STOP_LIMIT) and o.is_open
                for o in _flat(working)
            ):
                return []  # a stop already protects it
            self.reads.wrote(action.symbol)
            order = submit(action.symbol, action.side, action.qty, action.stop_price)
        except BrokerAuthError:
            raise
        except BrokerError as exc:
            log.error("%s: protective stop at %s failed: %s", action.symbol, action.stop_price, exc)
            return []
        log.warning(
            "%s: protective stop %s %s at %s sent (%s)",
            action.symbol,
            action.side,
            action.qty,
            action.stop_price,
            action.reason,
        )
        return [OrderUpdate(event=OrderEvent.ACCEPTED, order=order, timestamp=self.clock.now())]

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


def marketable_limit(side: str, last: Decimal | None, stop: Decimal | None) -> Decimal | None:
    """A limit that trades at once: MARKETABLE_PCT % through the latest close, but never past the stop
    (a sell at least a cent above it, a buy at least a cent below: the bracket's own price rule), so the
    replaced take-profit stays a valid leg and, should the price be past the stop, the stop is what fills."""
    if last is None and stop is None:
        return None
    if side == "sell":
        price = round_to_tick(float(last) * (1 - MARKETABLE_PCT / 100), "down") if last is not None else None
        floor = stop + MIN_LEG_DISTANCE if stop is not None else None
        candidates = [p for p in (price, floor) if p is not None]
        return max(candidates)
    price = round_to_tick(float(last) * (1 + MARKETABLE_PCT / 100), "up") if last is not None else None
    ceiling = stop - MIN_LEG_DISTANCE if stop is not None else None
    candidates = [p for p in (price, ceiling) if p is not None]
    return min(candidates)


def _flat(orders: list[OrderSnapshot]) -> list[OrderSnapshot]:
    """Every order and its legs."""
    out: list[OrderSnapshot] = []
    for o in orders:
        out.append(o)
        out.extend(_flat(list(o.legs)))
    return out
