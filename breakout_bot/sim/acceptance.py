"""Alpaca's rules for accepting an order (POST /v2/orders) beyond its body's own validity (orders.py):
the asset, a unique client order id, bracket legs against the base price, the position (no flipping it
in one order, shares held by working orders are not available), shorting (shortable, easy to borrow,
$2,000 of equity), the legacy pattern-day-trader protection (a switch), the wash-trade check, and buying
power (valued by core/margin.py, the rule the bot's risk gate applies too). A refusal is Alpaca's status,
code and message (ApiError). Sources: docs/simulator.md, "How the simulator matches Alpaca".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..core.margin import MIN_EQUITY_FOR_SHORTS, opening_order_value
from .account import Account
from .assets import Asset
from .book import OrderBook, opposite
from .errors import ApiError, day_trade_denied, forbidden, invalid, unprocessable
from .models import WORKING
from .orders import OrderRequest, check_bracket_prices

Price = Callable[[str], float | None]  # a symbol's last trade
WASH_TRADE = "potential wash trade detected. use complex orders"


@dataclass
class Rules:
    """The account's refusals that a world may switch (SimConfig, /sim/faults)."""

    wash_trade: int | None = 403  # the status of a wash-trade refusal (403 or 422); None: no check
    legacy_pdt: frozenset[str] = frozenset()  # "entries" and/or "exits": refused with 40310100


def accept(
    req: OrderRequest,
    asset: Asset | None,
    book: OrderBook,
    account: Account,
    price: Price,
    rules: Rules | None = None,
) -> Asset:
    """The asset the order trades, or the ApiError Alpaca would answer."""
    rules = rules or Rules()
    if asset is None:
        raise invalid(f'asset "{req.symbol}" not found')
    if not asset.tradable:
        raise unprocessable(f'asset "{req.symbol}" is not tradable')
    if req.client_order_id is not None and req.client_order_id in book.by_client_id:
        raise invalid("client_order_id must be unique")
    if req.order_class in ("bracket", "oto", "oco"):
        base = _base_price(req, price)
        if base is not None:
            check_bracket_prices(req, base)
    closing = _closing(req, account)
    _check_position_rules(req, asset, book, account, closing)
    if rules.legacy_pdt and ("exits" if closing else "entries") in rules.legacy_pdt:
        raise day_trade_denied()
    if rules.wash_trade is not None:
        _check_wash_trade(req, book, rules.wash_trade)
    _check_buying_power(req, book, account, price, closing)
    return asset


def _base_price(req: OrderRequest, price: Price) -> float | None:
    if req.order_class == "oco":
        return req.take_profit.value if req.take_profit else None
    if req.type == "limit" and req.limit_price is not None:
        return req.limit_price.value
    return price(req.symbol)


def _closing(req: OrderRequest, account: Account) -> bool:
    q = account.position_qty(req.symbol)
    return (q > 0 and req.side == "sell") or (q < 0 and req.side == "buy")


def _check_position_rules(
    req: OrderRequest, asset: Asset, book: OrderBook, account: Account, closing: bool
) -> None:
    """No flipping a position in one order, qty held by open orders is not available, shorts need a
    shortable, easy-to-borrow asset and $2,000 of equity (messages per NOTES.md 2e: 403 40310000)."""
    if req.order_class == "oco":
        return  # exit orders: their qty is checked when they fill (simplification, documented)
    q = account.position_qty(req.symbol)
    if closing:
        held = book.held_qty(req.symbol, req.side)
        available = abs(q) - held
        if req.qty > available:
            raise forbidden(
                f"insufficient qty available for order (requested: {req.qty}, available: {max(available, 0)})",
                available=str(max(available, 0)),
                existing_qty=str(abs(q)),
                held_for_orders=str(held),
                symbol=req.symbol,
            )
    elif req.side == "sell":
        if not asset.shortable or not asset.easy_to_borrow:
            raise forbidden(f"asset {req.symbol} cannot be sold short")
        if account.equity() < MIN_EQUITY_FOR_SHORTS:
            raise forbidden("account is not allowed to short")


def _check_wash_trade(req: OrderRequest, book: OrderBook, status: int) -> None:
    """A simple order opposite an order of the same symbol working at the exchange could trade with
    it: refused (held legs are not at the exchange). Bracket, OCO and OTO orders are exempt (docs, user
    protections: "use complex orders")."""
    if req.order_class:
        return
    other = next(
        (
            o
            for o in book.open
            if o.status in WORKING and o.symbol == req.symbol and o.side == opposite(req.side)
        ),
        None,
    )
    if other is None:
        return
    code = 40310000 if status == 403 else 42210000
    raise ApiError(status, code, WASH_TRADE, existing_order_id=other.id, reject_reason="wash trade")


def reserved_buying_power(book: OrderBook, ask: Callable[[str], float]) -> float:
    """What working opening orders hold of the buying power (their value as if sent now)."""
    return sum(
        opening_order_value(o.side, o.remaining, ask(o.symbol), o.limit_price, o.stop_price)
        for o in book.open
        if o.parent_id is None and o.can_match and o.position_intent.endswith("to_open")
    )


def _check_buying_power(
    req: OrderRequest, book: OrderBook, account: Account, price: Price, closing: bool
) -> None:
    """Buying power, less what working opening orders reserve, must cover the order's value."""
    if closing or req.order_class == "oco":
        return

    def ask(symbol: str) -> float:
        return (price(symbol) or 0.0) + 0.01  # the simulator quotes one cent either side

    cost = opening_order_value(
        req.side,
        req.qty,
        ask(req.symbol),
        req.limit_price.value if req.limit_price else None,
        req.stop_price.value if req.stop_price else None,
    )
    bp = account.buying_power() - reserved_buying_power(book, ask)
    if cost > bp:
        raise forbidden("insufficient buying power", buying_power=round(bp, 2), cost_basis=round(cost, 2))
