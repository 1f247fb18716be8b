"""The fill ledger: the broker's FILL activities (REST) are the ledger, the trade_updates stream a hint.

One execution can therefore arrive twice (stream and REST). It is recognised by two keys, both carried
by both sources: its execution id, and (order id, the order's cumulative filled quantity after it).
The simulator puts the stream's `execution_id` after `::` in the activity id; whether Alpaca does is
unverified, hence the second key. `past_trades.json` records carry both, so the keys survive a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from ..broker.base import Broker, FillActivity
from ..core.events import OrderUpdate
from ..core.model import FILL_EVENTS, Fill, OrderEvent, OrderSnapshot, OrderStatus
from ..errors import BrokerError
from ..journal import FillRecord, Journal, RunTags

log = logging.getLogger(__name__)

Source = str  # "stream" | "rest": where an update came from (the journal records it)


def fill_key(order_id: str, cum_qty: Decimal | None, execution_id: str) -> str:
    """One execution seen through the stream and through REST activities gets the same key:
    an order's cumulative filled quantity after an execution identifies that execution."""
    return f"{order_id}@{cum_qty.normalize()}" if cum_qty is not None else execution_id


class FillLedger:
    """What has been recorded (the journal), which order updates are news, and new FILL activities."""

    def __init__(self, broker: Broker, journal: Journal, tags: RunTags | None = None) -> None:
        self.broker = broker
        self.journal = journal
        self.tags = tags  # every record of this run carries them (mode, account, run id)
        self._seen: set[str] = set()
        self._orders: dict[str, OrderSnapshot] = {}  # the latest snapshot of every order we heard of
        self._since: datetime | None = None  # the newest activity read so far
        for record in journal.records():
            self._remember(record.order_id, Decimal(record.cum_qty) if record.cum_qty else None, record.id)

    # ------------------------------------------------------------------ updates
    def is_news(self, update: OrderUpdate) -> bool:
        """Should the machine hear this update? A fill already recorded is not; nor is an order event
        the REST ledger has overtaken. Remembers the order's snapshot."""
        if update.event in FILL_EVENTS:
            if self.seen(update.order.id, update.order.filled_qty or None, update.execution_id or ""):
                return False
        else:
            known = self._orders.get(update.order.id)
            if known is not None and known.filled_qty > update.order.filled_qty:
                # The stream lags the REST ledger: a `new` for an entry we already saw fill (and exit) is
                # old news; handing it on would make the machine adopt a dead entry.
                log.debug("stale %s for %s ignored", update.event.value, update.order.client_order_id)
                return False
        self._orders[update.order.id] = update.order
        return True

    def seen(self, order_id: str, cum_qty: Decimal | None, execution_id: str) -> bool:
        return fill_key(order_id, cum_qty, execution_id) in self._seen or execution_id in self._seen

    def record(self, fill: Fill, source: Source) -> None:
        """Append the fill to the journal (once: the journal is keyed by execution id)."""
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
            mode=self.tags.mode if self.tags else None,
            account=self.tags.account if self.tags else None,
            run=self.tags.run if self.tags else None,
        )
        self._remember(fill.order_id, fill.cum_qty, fill.execution_id)
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

    def _remember(self, order_id: str, cum_qty: Decimal | None, execution_id: str) -> None:
        self._seen.add(fill_key(order_id, cum_qty, execution_id))
        if execution_id:
            self._seen.add(execution_id)

    # ------------------------------------------------------------------ FILL activities
    def read_new(self, now: datetime) -> list[FillActivity] | None:
        """FILL activities since the newest one read (the last hour at first); None when unreadable."""
        start = self._since if self._since is not None else now - timedelta(hours=1)
        try:
            return self.broker.fill_activities(start - timedelta(seconds=1))
        except BrokerError as exc:
            log.warning("could not read fill activities: %s", exc)
            return None

    def read_today(self, day_start: datetime) -> list[FillActivity] | None:
        """Today's FILL activities (None when unreadable)."""
        try:
            activities = self.broker.fill_activities(day_start - timedelta(seconds=1))
        except BrokerError as exc:
            log.warning("today's fills unreadable (%s): realized P&L unknown until the next reconcile", exc)
            return None
        return [a for a in activities if a.transaction_time >= day_start]

    def updates_from(
        self, activities: Iterable[FillActivity], symbols: Iterable[str]
    ) -> Iterator[OrderUpdate]:
        """The fills among `activities` the machines have not seen, as order updates, one at a time:
        the caller hands each to its machine before the next is judged (its RecordFill counts)."""
        wanted = set(symbols)
        for activity in activities:
            self._since = max(self._since or activity.transaction_time, activity.transaction_time)
            if activity.symbol not in wanted:
                continue
            if self.seen(activity.order_id, activity.cum_qty, activity.execution_id):
                continue
            update = self._update_from(activity)
            if update is not None:
                yield update

    def _update_from(self, activity: FillActivity) -> OrderUpdate | None:
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
        return OrderUpdate(
            event=OrderEvent.FILL if done else OrderEvent.PARTIAL_FILL,
            order=order,
            timestamp=activity.transaction_time,
            execution_id=activity.execution_id,
            qty=activity.qty,
            price=activity.price,
        )
