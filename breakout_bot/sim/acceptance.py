"""Alpaca's rules for accepting an order (POST /v2/orders) beyond its body's own validity (orders.py):
the asset, a unique client order id, bracket legs against the base price, the position (no flipping it
in one order, shares held by working orders are not available), shortability, and buying power. A
refusal is Alpaca's status, code and message (ApiError)."""

from __future__ import annotations

from collections.abc import Callable

from .account import Account
from .assets import Asset
from .book import OrderBook
from .errors import forbidden, invalid, unprocessable
from .models import WORKING
from .orders import OrderRequest, check_bracket_prices

Price = Callable[[str], float | None]  # a symbol's last trade


def accept(req: OrderRequest, asset: Asset | None, book: OrderBook, account: Account, price: Price) -> Asset:
    """The asset the order trades, or the ApiError Alpaca would answer."""
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
    _check_position_rules(req, asset, book, account)
    _check_buying_power(req, book, account, price)
    return asset


def _base_price(req: OrderRequest, price: Price) -> float | None:
    if req.order_class == "oco":
        return req.take_profit.value if req.take_profit else None
    if req.type == "limit" and req.limit_price is not None:
        return req.limit_price.value
    return price(req.symbol)


def _check_position_rules(req: OrderRequest, asset: Asset, book: OrderBook, account: Account) -> None:
    """No flipping a position in one order, qty held by open orders is not available, shorts need a
    shortable asset (messages per NOTES.md 2e: 403 40310000)."""
    if req.order_class == "oco":
        return  # exit orders: their qty is checked when they fill (simplification, documented)
    q = account.position_qty(req.symbol)
    closing = (q > 0 and req.side == "sell") or (q < 0 and req.side == "buy")
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
    elif req.side == "sell" and not asset.shortable:
        raise forbidden(f"asset {req.symbol} cannot be sold short")


def _estimate(req: OrderRequest, price: Price) -> float:
    if req.limit_price is not None:
        return req.limit_price.value
    if req.stop_price is not None:
        return req.stop_price.value
    return price(req.symbol) or 0.0


def _check_buying_power(req: OrderRequest, book: OrderBook, account: Account, price: Price) -> None:
    """Intraday buying power minus what working opening orders reserve must cover the order."""
    q = account.position_qty(req.symbol)
    opening = not ((q > 0 and req.side == "sell") or (q < 0 and req.side == "buy"))
    if not opening or req.order_class == "oco":
        return
    reserved = sum(
        o.remaining * (o.limit_price or o.stop_price or price(o.symbol) or 0.0)
        for o in book.open
        if o.parent_id is None and o.status in WORKING and o.position_intent.endswith("to_open")
    )
    cost = req.qty * _estimate(req, price)
    bp = account.buying_power() - reserved
    if cost > bp:
        raise forbidden("insufficient buying power", buying_power=round(bp, 2), cost_basis=round(cost, 2))
