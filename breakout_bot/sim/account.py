"""The simulated account: average-cost positions (long or short), cash, equity and buying power.

Cash moves by each trade's value (short proceeds included); equity = cash + Σ qty × mark (the last
trade); buying power = multiplier × equity − gross position value (intraday margin, Alpaca's
`multiplier "4"`; 1x below $2,000 of equity), floored at 0, less what open opening orders reserve
(GET /v2/account reports what is left). Positions are kept by core/positions.py's `apply_fill`, as the
machine keeps its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..core.margin import MIN_EQUITY_FOR_SHORTS
from ..core.positions import apply_fill
from .models import Position


@dataclass(frozen=True)
class AccountView:
    """The account at one instant, as GET /v2/account reports it."""

    cash: float
    equity: float
    buying_power: float
    long_value: float
    short_value: float  # negative
    last_equity: float
    multiplier: float
    id: str = ""
    number: str = ""  # account_number: what the bot tags its journal records with


class Account:
    def __init__(
        self,
        initial_cash: float,
        multiplier: float,
        mark: Callable[[str], float],
        id: str = "",
        number: str = "",
    ) -> None:
        self.id = id
        self.number = number
        self.cash = initial_cash
        self.last_equity = initial_cash  # at the previous close
        self.realized_pl = 0.0
        self.multiplier = multiplier
        self.positions: dict[str, Position] = {}
        self._mark = mark  # the last trade of a symbol (0 when none)

    def position_qty(self, symbol: str) -> int:
        pos = self.positions.get(symbol)
        return pos.qty if pos is not None else 0

    def book_fill(self, symbol: str, asset_id: str, side: str, qty: int, price: float) -> None:
        """Average-cost position keeping; cash moves by the trade value (short proceeds included)."""
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(symbol, asset_id)
        signed = qty if side == "buy" else -qty
        average = pos.avg_entry_price if pos.qty else None
        new_qty, new_average, realized = apply_fill(float(pos.qty), average, float(signed), price)
        pos.qty = int(new_qty)  # whole shares: exact in float
        pos.avg_entry_price = 0.0 if new_average is None else new_average
        if realized is not None:
            pos.realized_pl += realized
            self.realized_pl += realized
        self.cash = round(self.cash - signed * price, 6)
        if pos.qty == 0:
            del self.positions[symbol]

    def equity(self) -> float:
        return self.cash + sum(p.qty * self._mark(s) for s, p in self.positions.items())

    def buying_power(self) -> float:
        """Intraday margin: multiplier (4) x equity minus gross exposure, floored at 0 (documented);
        "restricted to 1x buying power" below $2,000 of equity."""
        gross = sum(abs(p.qty) * self._mark(s) for s, p in self.positions.items())
        equity = self.equity()
        return max(0.0, self.effective_multiplier(equity) * equity - gross)

    def effective_multiplier(self, equity: float) -> float:
        return self.multiplier if equity >= MIN_EQUITY_FOR_SHORTS else 1.0

    def view(self, reserved: float = 0.0) -> AccountView:
        longs = sum(p.qty * self._mark(s) for s, p in self.positions.items() if p.qty > 0)
        shorts = sum(p.qty * self._mark(s) for s, p in self.positions.items() if p.qty < 0)
        return AccountView(
            cash=self.cash,
            equity=self.equity(),
            buying_power=max(0.0, self.buying_power() - reserved),
            long_value=longs,
            short_value=shorts,
            last_equity=self.last_equity,
            multiplier=self.effective_multiplier(self.equity()),
            id=self.id,
            number=self.number,
        )

    def close_day(self) -> None:
        """The closing bell: today's equity is tomorrow's last_equity."""
        self.last_equity = self.equity()
