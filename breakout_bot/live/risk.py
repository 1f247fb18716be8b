"""The risk gate: every entry passes here before it reaches the broker.

The account must trade, the kill switch must be off, buying power must cover the order as Alpaca values
it (core/margin.py, the simulator's rule too: a market buy at the price plus a 4 % collar, a short at
the price plus 3 %; the signal bar's close stands for the ask), and a short needs shorting enabled and
$2,000 of equity. The gate reads the account ahead of entries (once a minute while a symbol
is searching) so that a breakout goes out without an extra round trip; a fill or an order makes that
read stale, and the next entry reads afresh.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from ..broker.base import AccountInfo, Broker
from ..core.events import SubmitBracket
from ..core.margin import MIN_EQUITY_FOR_SHORTS, opening_order_value
from ..core.model import NEW_YORK
from ..errors import BrokerError
from .clock import Clock
from .halt import halted_on

log = logging.getLogger(__name__)

# The read prefetched a minute before the entry is good enough: at a 1-minute bound it was always a
# hair too old, and the entry paid a GET /v2/account before its POST (benchmarks/latency.py).
ACCOUNT_MAX_AGE = timedelta(minutes=2)


class RiskGate:
    def __init__(self, broker: Broker, clock: Clock, halt_file: Path, mode: str | None = None) -> None:
        self.broker = broker
        self.clock = clock
        self.halt_file = halt_file
        self.mode = mode  # a simulated run ignores a kill switch engaged for a real account
        self._account: AccountInfo | None = None
        self.equity: Decimal | None = None  # as of the last successful account read (the panel shows it)
        self._read_at: datetime | None = None

    def refusal(self, order: SubmitBracket) -> str | None:
        """Why this entry must not go out, or None."""
        account = self.account(max_age=ACCOUNT_MAX_AGE)
        if account is None:
            return "account unreadable"
        self.invalidate()  # this order changes buying power: the next entry reads it afresh
        if account.trading_blocked:
            return "account trading is blocked"
        halted = halted_on(self.halt_file, self.clock.now().astimezone(NEW_YORK).date(), self.mode)
        if halted is not None:
            return f"kill switch: {halted}"
        price = self._reference(order)
        needed = Decimal(str(round(opening_order_value(order.side, order.qty, float(price)), 2)))
        if account.buying_power < needed:
            return f"buying power {account.buying_power} < {needed:.2f} needed (Alpaca's collar included)"
        if order.side == "sell" and not account.shorting_enabled:
            return "shorting is not enabled on this account"
        if order.side == "sell" and account.equity < Decimal(str(MIN_EQUITY_FOR_SHORTS)):
            return f"equity {account.equity} < ${MIN_EQUITY_FOR_SHORTS:,.0f}: Alpaca allows no shorts"
        return None

    @staticmethod
    def _reference(order: SubmitBracket) -> Decimal:
        """The price the order is valued at: the signal bar's close, else the breakout level."""
        if order.reference_price is not None:
            return order.reference_price
        box = order.box
        level = None if box is None else box.high if order.side == "buy" else box.low
        return Decimal(str(level)) if level is not None else order.take_profit_price

    def account(self, max_age: timedelta) -> AccountInfo | None:
        """The account, read now unless a read younger than `max_age` is held. None when unreadable."""
        now = self.clock.now()
        if self._account is None or self._read_at is None or now - self._read_at > max_age:
            try:
                self._account = self.broker.get_account()
                self._read_at = now
                self.equity = self._account.equity
            except BrokerError as exc:
                log.warning("account unreadable: %s", exc)
                self._account = None
        return self._account

    def prefetch(self) -> None:
        """Read the account now, ahead of the next entry."""
        self.account(max_age=timedelta(0))

    def prefetch_if_stale(self) -> None:
        """After a fill made the held read stale: read it now, while nothing waits on it."""
        if self._account is None:
            self.prefetch()

    def invalidate(self) -> None:
        """A fill or an order changed cash and buying power."""
        self._account = None
