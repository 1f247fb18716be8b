"""Matching: the working orders of a symbol against each trade of the tape, and what a fill does.

Fills follow market/fills.py (shared with the backtest): a market order takes the trade's price; a
limit or stop level crossed between two trades of one continuous stretch fills at the level, a level
passed or gapped at the trade's price; a stop-limit becomes a limit once its stop trades. With partial
fills on, an order fills in two or three pieces on successive trades. A fill books the account, records
an Execution, emits the trade event, and moves the order's legs (the take-profit `new`, the stop-loss
armed but `held`) and OCO siblings (canceled, or a take-profit `replaced` by its stop's fill when the
world says so). An armed held stop whose price trades goes `new` first, then fills.
"""

from __future__ import annotations

from ..market.fills import fill_price_at, rising
from .account import Account
from .assets import Asset
from .book import OrderBook
from .models import Execution, Order


class Matcher:
    def __init__(
        self,
        book: OrderBook,
        account: Account,
        assets: dict[str, Asset],
        partial_fills: bool,
        take_profit_on_stop: str = "canceled",
    ) -> None:
        self.book = book
        self.account = account
        self.assets = assets
        self.partial_fills = partial_fills
        self.take_profit_on_stop = take_profit_on_stop  # "canceled" | "replaced"
        self.executions: list[Execution] = []

    def match(self, sym: str, t: float, p: float, prev: float | None, prev_t: float) -> None:
        """One trade of `sym` at `t`, price `p`; `prev` the trade before it (at `prev_t`) in this bar."""
        for o in [o for o in self.book.open if o.symbol == sym and o.can_match]:
            if not o.can_match or o.active_at >= t:
                continue  # canceled by a sibling's fill in this very loop, or not arrived yet
            self.book.promote(o, t)  # an order accepted while the market was closed reaches it now
            cont = prev if prev is not None and o.active_at < prev_t else None
            first_look = o.pieces is None
            price = self.fill_price(o, p, cont)
            if o.status == "held" and (price is not None or o.triggered):
                self.book.release(o, t)  # the held stop's price traded
            if price is not None:
                self.execute(o, price, t, self.next_piece(o))
            elif first_look and o.time_in_force in ("ioc", "fok"):
                o.pieces = []
            if o.is_open and o.time_in_force in ("ioc", "fok") and o.pieces is not None:
                self.book.cancel(o, t)  # immediate-or-cancel: whatever did not fill at the first look

    def fill_price(self, o: Order, p: float, cont: float | None) -> float | None:
        """`cont` is the previous trade when it and this one are one continuous stretch for the order."""
        if o.type == "market":
            return p
        if o.type == "limit" or (o.type == "stop_limit" and o.triggered):
            assert o.limit_price is not None
            return fill_price_at(o.limit_price, p, cont, rising(o.side, is_stop=False))
        assert o.stop_price is not None
        hit = fill_price_at(o.stop_price, p, cont, rising(o.side, is_stop=True))
        if hit is None or o.type == "stop":
            return hit
        o.triggered = True  # stop_limit: now a limit; fills at once only if marketable
        assert o.limit_price is not None
        marketable = hit <= o.limit_price if o.side == "buy" else hit >= o.limit_price
        return hit if marketable else None

    def next_piece(self, o: Order) -> int:
        if o.pieces is None:
            splittable = (
                self.partial_fills
                and o.type in ("market", "limit")
                and o.parent_id is None
                and o.order_class != "oco"
                and o.time_in_force != "fok"
                and o.remaining >= 2
            )
            if splittable:
                n = min(2 + o.seq % 2, o.remaining)
                base = o.remaining // n
                o.pieces = [base] * (n - 1) + [o.remaining - base * (n - 1)]
            else:
                o.pieces = [o.remaining]
        piece = o.pieces.pop(0) if o.pieces else o.remaining
        return min(piece, o.remaining)

    def execute(self, o: Order, price: float, t: float, qty: int) -> None:
        o.filled_qty += qty
        o.filled_notional += qty * price
        o.updated_at = t
        full = o.filled_qty >= o.qty
        o.status = "filled" if full else "partially_filled"
        if full:
            o.filled_at = t
        asset_id = self.assets[o.symbol].id if o.symbol in self.assets else ""
        self.account.book_fill(o.symbol, asset_id, o.side, qty, price)
        ex = Execution(
            execution_id=self.book.uuid(),
            order_id=o.id,
            symbol=o.symbol,
            side=o.side,
            qty=qty,
            price=price,
            time=t,
            cum_qty=o.filled_qty,
            leaves_qty=o.remaining,
            order_status=o.status,
            kind="fill" if full else "partial_fill",
        )
        self.executions.append(ex)
        self.book.emit(ex.kind, o, t, ex)
        if o.legs and o.order_class in ("bracket", "oto"):
            for leg in self.book.legs(o):
                if leg.status == "held":
                    leg.qty = o.filled_qty  # legs follow the parent's filled quantity
            if full:
                self.book.open_legs(o, t)
        if full:
            stop_filled = o.type in ("stop", "stop_limit")
            for sib in self.book.oco_siblings(o):
                if stop_filled and sib.type == "limit" and self.take_profit_on_stop == "replaced":
                    self.book.replace_by_fill(sib, o, t)
                else:
                    self.book.cancel(sib, t)
