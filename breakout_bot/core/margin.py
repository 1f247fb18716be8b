"""How Alpaca values an opening order against buying power: the one rule the simulator's acceptance
and the bot's risk gate share, so that the gate never sends an order the broker would refuse.

* A market buy is valued above the market: "converted to marketable limit orders with a 2.5% to 4%
  price collar" (Alpaca staff, forum t/21; the older orders docs say the same); a support article says
  2 % (another version 5 %); the current "Orders at Alpaca" page says the far side of the NBBO. We take
  the ask plus 4 %, which covers all but the 5 % version (docs/simulator.md). A buy limit is valued at
  its limit, a buy stop at its stop plus the same collar (Alpaca converts it to a stop limit 2.5-4 %
  above the stop).
* "The calculated value of an opening short sell order is MAX(order's limit price, 3% above the current
  ask price) * order quantity. For market short orders, the value is simply (3% above the current ask
  price) * order quantity" (docs, "Orders at Alpaca", buying power).
* Open opening orders reserve buying power: "your available buying power is reduced by existing open
  buy long and sell short orders" (same page).
* Shorts and margin need $2,000 of equity: "Accounts with less than $2,000 will not have access to
  these features and will be restricted to 1x buying power" (docs, margin and short selling).
"""

from __future__ import annotations

MARKET_BUY_COLLAR = 0.04
SHORT_ASK_MARGIN = 0.03
MIN_EQUITY_FOR_SHORTS = 2_000.0


def opening_order_value(
    side: str, qty: float, ask: float, limit_price: float | None = None, stop_price: float | None = None
) -> float:
    """The buying power an opening order of `qty` needs, with the market's `ask`."""
    if side == "buy":
        if limit_price is not None:
            return qty * limit_price
        if stop_price is not None:
            return qty * stop_price * (1 + MARKET_BUY_COLLAR)
        return qty * ask * (1 + MARKET_BUY_COLLAR)
    floor = ask * (1 + SHORT_ASK_MARGIN)
    return qty * max(limit_price or 0.0, floor)
