"""The risk gate: every entry passes here before it reaches the broker.

The account must trade, the kill switch must be off, buying power must cover the order as Alpaca values
it (core/margin.py, the simulator's rule too: a market buy at the price plus a 4 % collar, a short at
the price plus 3 %; the signal bar's close stands for the ask), and a short needs shorting enabled and
$2,000 of equity. The gate reads the account ahead of entries (once a minute while a symbol
is searching) so that a breakout goes out without an extra round trip; a fill makes that read stale,
and the next entry reads afresh.

Several symbols: an entry sent reserves buying power at once ("your available buying power is reduced
by existing open buy long and sell short orders": Alpaca, "Orders at Alpaca"; core/margin.py), so the
gate counts what the entries it let through since its last read reserve (valued as Alpaca values them)
and checks the next one against what is left: no re-read of the account per entry, and no order the
broker would refuse for buying power. The next read includes them. The portfolio's own rules
(`--max-positions`, the daily loss across the symbols: core/portfolio.py) are checked first, on the
machines' states the runner hands in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from ..broker.base import AccountInfo, Broker
from ..core.events import SubmitBracket
from ..core.margin import MIN_EQUITY_FOR_SHORTS, opening_order_value
from ..core.model import NEW_YORK
from ..core.params import Params
from ..core.portfolio import portfolio_limit
from ..core.state import State
from ..errors import BrokerError
from .clock import Clock
from .halt import halted_on

log = logging.getLogger(__name__)

# The read prefetched a minute before the entry is good enough: at a 1-minute bound it was always a
# hair too old, and the entry paid a GET /v2/account before its POST (benchmarks/latency.py).
ACCOUNT_MAX_AGE = timedelta(minutes=2)
KILL_SWITCH = "kill switch"  # among the limits (`RiskGate.limits`), beside core/portfolio.py's


class RiskGate:
    def __init__(
        self,
        broker: Broker,
        clock: Clock,
        halt_file: Path,
        mode: str | None = None,
        params: Params | None = None,
        states: Callable[[], Iterable[State]] = tuple,
    ) -> None:
        self.broker = broker
        self.params = params or Params()
        self.states = states  # every symbol's machine, for the portfolio's rules
        self._reserved = Decimal(0)  # buying power reserved by entries let through since the read
        self.clock = clock
        self.halt_file = halt_file
        self.mode = mode  # a simulated run ignores a kill switch engaged for a real account
        self._account: AccountInfo | None = None
        self.equity: Decimal | None = None  # as of the last successful account read (the panel shows it)
        self._read_at: datetime | None = None
        self._limits: dict[str, str] = {}  # today's limits met: what -> why (the first time), for the status
        self._limits_day: date | None = None

    def limits(self) -> tuple[tuple[str, str], ...]:
        """The limits that refused an entry today, and the kill switch if seen engaged: (what, why)."""
        if self._limits_day != self._today():
            return ()
        return tuple(self._limits.items())

    def watch_halt(self) -> str | None:
        """The kill switch's reason if engaged today (recorded among today's limits), else None."""
        halted = halted_on(self.halt_file, self._today(), self.mode)
        if halted is not None:
            self._met(KILL_SWITCH, halted)
        return halted

    def _met(self, what: str, why: str) -> None:
        today = self._today()
        if self._limits_day != today:
            self._limits, self._limits_day = {}, today
        self._limits.setdefault(what, why)

    def _today(self) -> date:
        return self.clock.now().astimezone(NEW_YORK).date()

    def refusal(self, order: SubmitBracket) -> str | None:
        """Why this entry must not go out, or None. An entry let through reserves its buying power
        (`reserve`, once the executor has sent it)."""
        portfolio = portfolio_limit(order.symbol, self.states(), self.params)
        if portfolio is not None:
            self._met(*portfolio)
            return portfolio[1]
        account = self.account(max_age=ACCOUNT_MAX_AGE)
        if account is None:
            return "account unreadable"
        if account.trading_blocked:
            return "account trading is blocked"
        halted = self.watch_halt()
        if halted is not None:
            return f"kill switch: {halted}"
        needed = self.value(order)
        available = account.buying_power - self._reserved
        if available < needed:
            reserved = f", {self._reserved:.2f} of it reserved by entries working" if self._reserved else ""
            return f"buying power {available} < {needed:.2f} needed (Alpaca's collar included{reserved})"
        if order.side == "sell" and not account.shorting_enabled:
            return "shorting is not enabled on this account"
        if order.side == "sell" and account.equity < Decimal(str(MIN_EQUITY_FOR_SHORTS)):
            return f"equity {account.equity} < ${MIN_EQUITY_FOR_SHORTS:,.0f}: Alpaca allows no shorts"
        return None

    def value(self, order: SubmitBracket) -> Decimal:
        """The buying power the entry takes, as Alpaca values it (core/margin.py)."""
        price = self._reference(order)
        return Decimal(str(round(opening_order_value(order.side, order.qty, float(price)), 2)))

    def reserve(self, order: SubmitBracket) -> None:
        """An entry was sent (or may have been): its buying power is taken until the next read."""
        self._reserved += self.value(order)

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
                self._reserved = Decimal(0)  # the read's buying power holds the working orders
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
