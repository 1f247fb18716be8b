"""The simulated order book: every order ever placed, the open ones, bracket/OCO structure, and the
trade_updates events of each change (copies of the order at that moment, for the wire).

Ids come from the exchange's id RNG: fresh for every simulator instance (SimConfig.id_seed fixes them).

A filled bracket's legs: the take-profit goes `new`, the stop-loss stays `held` until its stop price
trades, then goes `new` and fills ("the typical state would be the take profit limit order leg is set to
new and the stop loss leg remains held", Alpaca support, forum t/3697; forum t/2727; alpaca-py #198).
`held_for_orders` counts a group's shares once (a third-party log: `existing_qty 23, held_for_orders 23`
with the take-profit new and the stop held).
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable

from .account import Account
from .models import Execution, Order, TradeEvent
from .orders import OrderRequest


def opposite(side: str) -> str:
    return "sell" if side == "buy" else "buy"


class OrderBook:
    def __init__(
        self,
        rng: random.Random,
        account: Account,
        publish: Callable[[TradeEvent], None],
        event_rng: random.Random | None = None,
    ) -> None:
        self._rng = rng
        self._event_rng = event_rng or random.Random(0)  # ids of events that are not fills
        self._account = account
        self._publish = publish
        self.orders: dict[str, Order] = {}
        self.by_client_id: dict[str, Order] = {}
        self.open: list[Order] = []  # open orders in seq order (pruned lazily)
        self.events: list[TradeEvent] = []  # every trade_updates event, in order
        self._seq = 0

    def uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def add(self, o: Order) -> Order:
        self.orders[o.id] = o
        self.by_client_id[o.client_order_id] = o
        self.open.append(o)
        return o

    def prune(self) -> None:
        self.open = [o for o in self.open if o.is_open]

    def legs(self, o: Order) -> list[Order]:
        return [self.orders[i] for i in o.legs]

    def root(self, o: Order) -> Order:
        return self.orders[o.parent_id] if o.parent_id is not None else o

    def group(self, o: Order) -> list[Order]:
        """The order's one-cancels-all group: its parent (or itself) and the legs."""
        root = self.root(o)
        return [root, *self.legs(root)]

    def held_qty(self, symbol: str, side: str) -> int:
        """Shares that working orders on this side already claim: a one-cancels-other group once (its
        largest remaining order), an armed held stop as part of its group."""
        by_group: dict[str, int] = {}
        for o in self.open:
            if o.symbol != symbol or o.side != side or not o.can_match:
                continue
            key = self.root(o).id if (o.parent_id is not None or o.order_class == "oco") else o.id
            by_group[key] = max(by_group.get(key, 0), o.remaining)
        return sum(by_group.values())

    # ------------------------------------------------------------------ new orders
    def create(self, req: OrderRequest, asset_id: str, now: float, latency_s: float) -> Order:
        """The order of a request (validated by the exchange): a bracket's or oto's legs held, an OCO's
        stop leg working with it."""
        lp = req.limit_price.value if req.limit_price else None
        sp = req.stop_price.value if req.stop_price else None
        if req.order_class == "oco":
            assert req.take_profit is not None and req.stop_loss_stop is not None
            parent = self._new(
                req,
                asset_id,
                req.side,
                "limit",
                req.take_profit.value,
                None,
                "new",
                None,
                now,
                latency_s,
                req.client_order_id,
            )
            parent.position_intent = "sell_to_close" if req.side == "sell" else "buy_to_close"
            self._add_stop_leg(req, asset_id, parent, req.side, "new", now, latency_s)
            return parent
        parent = self._new(
            req, asset_id, req.side, req.type, lp, sp, "new", None, now, latency_s, req.client_order_id
        )
        if req.order_class in ("bracket", "oto"):
            exit_side = opposite(req.side)
            if req.take_profit is not None:
                leg = self._new(
                    req,
                    asset_id,
                    exit_side,
                    "limit",
                    req.take_profit.value,
                    None,
                    "held",
                    parent,
                    now,
                    latency_s,
                )
                parent.legs.append(leg.id)
            if req.stop_loss_stop is not None:
                self._add_stop_leg(req, asset_id, parent, exit_side, "held", now, latency_s)
        return parent

    def _add_stop_leg(
        self,
        req: OrderRequest,
        asset_id: str,
        parent: Order,
        side: str,
        status: str,
        now: float,
        latency_s: float,
    ) -> None:
        assert req.stop_loss_stop is not None
        sl_limit = req.stop_loss_limit.value if req.stop_loss_limit else None
        otype = "stop_limit" if sl_limit is not None else "stop"
        leg = self._new(
            req, asset_id, side, otype, sl_limit, req.stop_loss_stop.value, status, parent, now, latency_s
        )
        parent.legs.append(leg.id)

    def _new(
        self,
        req: OrderRequest,
        asset_id: str,
        side: str,
        otype: str,
        limit: float | None,
        stop: float | None,
        status: str,
        parent: Order | None,
        now: float,
        latency_s: float,
        coid: str | None = None,
    ) -> Order:
        q = self._account.position_qty(req.symbol)
        if side == "buy":
            intent = "buy_to_close" if q < 0 else "buy_to_open"
        else:
            intent = "sell_to_close" if q > 0 else "sell_to_open"
        if parent is not None:
            intent = "sell_to_close" if side == "sell" else "buy_to_close"
        o = Order(
            id=self.uuid(),
            client_order_id=coid or self.uuid(),
            symbol=req.symbol,
            asset_id=asset_id,
            side=side,
            type=otype,
            time_in_force=req.time_in_force,
            qty=req.qty,
            limit_price=limit,
            stop_price=stop,
            order_class=req.order_class,
            status=status,
            created_at=now,
            seq=self.next_seq(),
            active_at=now + latency_s,
            position_intent=intent,
            extended_hours=req.extended_hours,
            updated_at=now,
            submitted_at=now,
            parent_id=parent.id if parent else None,
        )
        return self.add(o)

    # ------------------------------------------------------------------ changes
    def oco_siblings(self, o: Order) -> list[Order]:
        """The orders canceled when `o` fills: the other legs of a bracket, or the other side of an OCO."""
        if o.parent_id is not None:
            parent = self.orders[o.parent_id]
            group = [x for x in self.legs(parent) if x.id != o.id]
            if parent.order_class == "oco":
                group.insert(0, parent)
            return [x for x in group if x.is_open]
        if o.order_class == "oco":
            return [x for x in self.legs(o) if x.is_open]
        return []

    def activate(self, leg: Order, t: float) -> None:
        if leg.status != "held":
            return
        leg.status = "new"
        leg.active_at = max(leg.active_at, t)
        leg.updated_at = t
        self.emit("new", leg, t)

    def arm(self, leg: Order, t: float) -> None:
        """A stop-loss leg whose parent filled: it stays `held` (no event) but may now trigger."""
        if leg.status == "held" and not leg.armed:
            leg.armed = True
            leg.active_at = max(leg.active_at, t)

    def release(self, leg: Order, t: float) -> None:
        """An armed stop whose price traded: `new`, then it fills."""
        if leg.status == "held":
            leg.status = "new"
            leg.updated_at = t
            self.emit("new", leg, t)

    def open_legs(self, parent: Order, t: float) -> None:
        """The parent filled: the take-profit rests at the exchange, the stop-loss stays held, armed."""
        for leg in self.legs(parent):
            if leg.type in ("stop", "stop_limit"):
                self.arm(leg, t)
            else:
                self.activate(leg, t)

    def promote(self, o: Order, t: float) -> None:
        """`pending_new` / `accepted` -> `new`: the order reached the exchange."""
        if o.status in ("pending_new", "accepted"):
            o.status = "new"
            o.updated_at = t
            self.emit("new", o, t)

    def cancel(self, o: Order, t: float) -> None:
        if not o.is_open:
            return
        o.status = "canceled"
        o.canceled_at = t
        o.updated_at = t
        o.cancel_at = None
        self.emit("canceled", o, t)
        if o.parent_id is None and o.legs:
            if o.filled_qty > 0 and o.order_class != "oco":
                for leg in self.legs(o):
                    if leg.status == "held" and not leg.armed:
                        leg.qty = o.filled_qty  # a partly filled entry keeps its protection
                self.open_legs(o, t)
            else:
                for leg in self.legs(o):
                    self.cancel(leg, t)

    def replace_by_fill(self, o: Order, by: Order, t: float) -> None:
        """A take-profit ended by its stop's fill, reported `replaced` (alpaca-py #198) instead of
        `canceled`."""
        if not o.is_open:
            return
        o.status = "replaced"
        o.replaced_at = t
        o.replaced_by = by.id
        o.updated_at = t
        self.emit("replaced", o, t)

    def emit(self, event: str, o: Order, t: float, ex: Execution | None = None) -> None:
        """A trade_updates event: the order (and, for a parent, its legs) as they are now."""
        legs = tuple(copy.copy(leg) for leg in self.legs(o)) if o.legs and o.parent_id is None else ()
        # execution_id is on every event but `accepted` and `pending_new` (alpaca-py #371, QC Lean #41).
        event_id = None
        if ex is None and event not in ("accepted", "pending_new"):
            event_id = str(uuid.UUID(int=self._event_rng.getrandbits(128), version=4))
        published = TradeEvent(
            event, copy.copy(o), legs, t, ex, self._account.position_qty(o.symbol), event_id
        )
        self.events.append(published)
        self._publish(published)
