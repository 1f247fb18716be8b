"""Round-trip trades: the common currency of the event path, the fast kernel and the reports."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from ..core.valuetype import value_type

ExitReason = Literal["take_profit", "stop_loss", "flatten", "end_of_data"]


@value_type
class Trade:
    symbol: str
    side: Literal["buy", "sell"]  # the entry's side: buy = long, sell = short
    qty: int
    entry_time: datetime  # tz-aware, the fill time (the bar's start for bar-based fills)
    entry_price: float
    exit_time: datetime
    exit_price: float
    exit_reason: ExitReason
    stop_price: float
    take_profit_price: float
    box_high: float
    box_low: float
    box_range: float
    commission: float = 0.0

    @property
    def gross_pnl(self) -> float:
        """To the cent, from the prices as the report shows them (4 decimals at most), so that a row's
        prices, quantity and P&L agree and the rows add up to the totals."""
        return self._gross_cents() / 100

    @property
    def net_pnl(self) -> float:
        fee = self.commission
        return (self._gross_cents() - (int(_cents(Decimal(repr(fee))).scaleb(2)) if fee else 0)) / 100

    def _gross_cents(self) -> int:
        # In whole numbers (ten-thousandths of a dollar, then cents rounded half up): the Decimal
        # arithmetic's result exactly (tests/backtest/test_trades.py holds them equal), ~4x cheaper;
        # a report computes it for every trade, twice.
        direction = 1 if self.side == "buy" else -1
        move = (_ten_thousandths(self.exit_price) - _ten_thousandths(self.entry_price)) * self.qty * direction
        cents = (abs(move) + 50) // 100
        return cents if move >= 0 else -cents

    def key(self) -> tuple[object, ...]:
        """What two engines must agree on, trade for trade (prices to the cent)."""
        return (
            self.side,
            self.qty,
            self.entry_time,
            round(self.entry_price, 4),
            self.exit_time,
            round(self.exit_price, 4),
            self.exit_reason,
            round(self.stop_price, 4),
            round(self.take_profit_price, 4),
        )


_CENT = Decimal("0.01")


def _ten_thousandths(price: float) -> int:
    """A fill price without float noise, in ten-thousandths of a dollar: the bars' precision is 4
    decimals (market/bars.py rounds them). The text is correctly rounded, as Decimal(f"{price:.4f}")."""
    return int(f"{price:.4f}".replace(".", ""))


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)
