"""Parsing and stateless validation of POST /v2/orders and PATCH /v2/orders/{id} bodies.

Shapes: trading-api.json paths./v2/orders.post.requestBody (symbol, qty, side, type, time_in_force,
limit_price, stop_price, client_order_id, order_class, take_profit{limit_price},
stop_loss{stop_price,limit_price}, extended_hours). Messages follow Alpaca's (see NOTES.md 2e/2g).
Checks that need account state (buying power, qty, base price, uniqueness) live in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ..core.ticks import MIN_LEG_DISTANCE, decimals_allowed
from .errors import ApiError, invalid, unprocessable

SIDES = ("buy", "sell")
TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
TIFS = ("day", "gtc", "opg", "cls", "ioc", "fok")
CLASSES = ("", "simple", "bracket", "oco", "oto")


@dataclass(frozen=True)
class Price:
    value: float
    text: str  # as sent, for error messages ("invalid limit_price 41.085. ...")


@dataclass(frozen=True)
class OrderRequest:
    symbol: str
    qty: int
    side: str
    type: str
    time_in_force: str
    limit_price: Price | None
    stop_price: Price | None
    client_order_id: str | None
    order_class: str  # "" for simple
    take_profit: Price | None
    stop_loss_stop: Price | None
    stop_loss_limit: Price | None
    extended_hours: bool

    @classmethod
    def market(cls, symbol: str, qty: int, side: str) -> OrderRequest:
        """A simple market day order (what DELETE /v2/positions/{symbol} sends)."""
        return cls(symbol, qty, side, "market", "day", None, None, None, "", None, None, None, False)


@dataclass(frozen=True)
class ReplaceRequest:
    """PATCH /v2/orders/{id}: what changes (None: as before)."""

    qty: int | None
    limit_price: Price | None
    stop_price: Price | None
    time_in_force: str | None
    client_order_id: str | None


def parse_qty(raw: object) -> int:
    """qty: positive integer, as number or string (fractional shares are not simulated)."""
    if raw is None or raw == "":
        raise invalid("qty or notional is required")
    if isinstance(raw, bool):
        raise invalid("qty must be integer")
    try:
        d = Decimal(str(raw).strip())
    except InvalidOperation:
        raise invalid(f"invalid qty {raw}") from None
    if not d.is_finite() or d != d.to_integral_value():
        raise invalid("qty must be integer")
    if d <= 0:
        raise invalid("qty must be > 0")
    return int(d)


def parse_price(raw: object, field: str) -> Price | None:
    """A price as number or string; sub-penny rule from alpaca-docs content/trading/orders.md:
    >= $1.00 at most 2 decimals, < $1.00 at most 4; else 422 42210000 with Alpaca's exact text."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise invalid(f"invalid {field}")
    text = raw.strip() if isinstance(raw, str) else repr(raw)
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise invalid(f"invalid {field} {text}") from None
    if not d.is_finite() or d <= 0:
        raise unprocessable(f"invalid {field}: must be > 0")
    exponent = d.normalize().as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if decimals > decimals_allowed(d):
        raise unprocessable(
            f"invalid {field} {text}. sub-penny increment does not fulfill minimum pricing criteria"
        )
    return Price(float(d), text)


def _leg(body: dict[str, object], name: str) -> dict[str, object]:
    raw = body.get(name)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise invalid(f"invalid {name}")
    return raw


def parse_order_request(body: object) -> OrderRequest:
    if not isinstance(body, dict):
        raise ApiError(400, 40010000, "request body format is invalid")
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol.strip():
        raise invalid("symbol is required")
    if body.get("notional") not in (None, ""):
        if body.get("qty") not in (None, ""):
            raise invalid("only one of qty or notional is accepted")
        raise invalid("notional orders are not supported by the simulator")
    qty = parse_qty(body.get("qty"))
    side = str(body.get("side") or "")
    if side not in SIDES:
        raise invalid(f"invalid side {side}" if side else "side is required")
    otype = str(body.get("type") or "")
    if otype not in TYPES:
        raise invalid(f"invalid order type {otype}" if otype else "type is required")
    if otype == "trailing_stop":
        raise invalid("trailing_stop orders are not supported by the simulator")
    tif = str(body.get("time_in_force") or "")
    if tif not in TIFS:
        raise invalid(f"invalid time_in_force {tif}" if tif else "time_in_force is required")
    limit_price = parse_price(body.get("limit_price"), "limit_price")
    stop_price = parse_price(body.get("stop_price"), "stop_price")
    is_oco = str(body.get("order_class") or "") == "oco"  # an OCO's limit is take_profit.limit_price
    if otype in ("limit", "stop_limit") and limit_price is None and not is_oco:
        raise invalid("limit orders require a limit price")
    if otype in ("stop", "stop_limit") and stop_price is None:
        raise invalid("stop orders require a stop price")
    if otype in ("market", "stop"):
        limit_price = None
    if otype in ("market", "limit"):
        stop_price = None
    coid = body.get("client_order_id")
    if coid is not None and not isinstance(coid, str):
        raise invalid("invalid client_order_id")
    if coid is not None and len(coid) > 128:
        raise invalid("client_order_id must be no more than 128 characters")
    order_class = str(body.get("order_class") or "")
    if order_class not in CLASSES:
        raise invalid(f"invalid order_class {order_class}")
    order_class = "" if order_class == "simple" else order_class
    tp = _leg(body, "take_profit")
    sl = _leg(body, "stop_loss")
    take_profit = parse_price(tp.get("limit_price"), "take_profit.limit_price")
    sl_stop = parse_price(sl.get("stop_price"), "stop_loss.stop_price")
    sl_limit = parse_price(sl.get("limit_price"), "stop_loss.limit_price")
    extended = bool(body.get("extended_hours") or False)
    if extended and (otype != "limit" or tif != "day" or order_class):
        raise invalid("extended hours order must be DAY limit orders")
    if order_class == "bracket":
        if otype not in ("market", "limit"):
            raise invalid("bracket orders must be market or limit orders")
        if take_profit is None or sl_stop is None:
            raise invalid("bracket orders require take_profit.limit_price and stop_loss.stop_price")
    if order_class == "oco":
        if otype != "limit":
            raise invalid("oco orders must be limit orders")
        if take_profit is None or sl_stop is None:
            raise invalid("oco orders require take_profit.limit_price and stop_loss.stop_price")
    if order_class == "oto":
        if otype not in ("market", "limit", "stop", "stop_limit"):
            raise invalid("invalid order type for oto")
        if (take_profit is None) == (sl_stop is None):
            raise invalid("oto orders require exactly one of take_profit or stop_loss")
    if order_class in ("bracket", "oco", "oto") and tif not in ("day", "gtc"):
        raise invalid("time_in_force must be day or gtc for advanced orders")
    return OrderRequest(
        symbol=symbol.strip().upper(),
        qty=qty,
        side=side,
        type=otype,
        time_in_force=tif,
        limit_price=limit_price,
        stop_price=stop_price,
        client_order_id=coid,
        order_class=order_class,
        take_profit=take_profit,
        stop_loss_stop=sl_stop,
        stop_loss_limit=sl_limit,
        extended_hours=extended,
    )


def parse_replace_request(body: dict[str, object]) -> ReplaceRequest:
    qty = parse_qty(body["qty"]) if body.get("qty") not in (None, "") else None
    limit_price = parse_price(body.get("limit_price"), "limit_price")
    stop_price = parse_price(body.get("stop_price"), "stop_price")
    tif = str(body.get("time_in_force") or "") or None
    coid = body.get("client_order_id")
    if coid is not None and not isinstance(coid, str):
        raise invalid("client_order_id must be unique")
    return ReplaceRequest(qty, limit_price, stop_price, tif, coid)


def check_bracket_prices(req: OrderRequest, base: float) -> None:
    """Leg prices vs the base price (alpaca-docs orders.md "Threshold on stop price of stop-loss
    orders"; third-party logs for the messages). Decimal arithmetic: 0.01 steps must be exact."""
    b = Decimal(str(round(base, 4)))
    step = MIN_LEG_DISTANCE
    extra = {"base_price": str(b)}
    tp = Decimal(req.take_profit.text) if req.take_profit else None
    sl = Decimal(req.stop_loss_stop.text) if req.stop_loss_stop else None
    if req.order_class == "oco":
        # The OCO's own take-profit limit is its base price: the stop must sit beyond it.
        if tp is not None and sl is not None:
            if req.side == "sell" and sl > tp - step:
                raise unprocessable("stop_loss.stop_price must be <= take_profit.limit_price - 0.01", **extra)
            if req.side == "buy" and sl < tp + step:
                raise unprocessable("stop_loss.stop_price must be >= take_profit.limit_price + 0.01", **extra)
        return
    if req.side == "buy":
        if tp is not None and tp < b + step:
            raise unprocessable("take_profit.limit_price must be >= base_price + 0.01", **extra)
        if sl is not None and sl > b - step:
            raise unprocessable("stop_loss.stop_price must be <= base_price - 0.01", **extra)
    else:
        if tp is not None and tp > b - step:
            raise unprocessable("take_profit.limit_price must be <= base_price - 0.01", **extra)
        if sl is not None and sl < b + step:
            raise unprocessable("stop_loss.stop_price must be >= base_price + 0.01", **extra)
