"""One read of the account's open orders and positions, shared by the symbols acting in the same wake.

At the flatten every symbol acts in the same minute: each flat symbol cancels what it has working, each
open position is closed (live/executor.py). Read per symbol, that is 2 requests a cancel (the open
orders, nested and flat) and 4 a close (the orders, the position, the replace): 190 requests at 100
symbols, against Alpaca's 200 a minute. In a batch (`Executor.batch`, entered by the runner around a
wake that steps every machine, and around a reconcile's), the first symbol that needs its orders reads
every open order of the account and then every position (`GET /v2/orders?status=open`, nested and flat,
then `GET /v2/positions`: the orders first, as the executor's own reads), and every symbol takes its
part of that read. The requests of the minute then grow with the orders sent, not with the symbols.

Each symbol's rules stay its own: a symbol that wrote (a cancel, a replace, a close, a stop) reads its
orders and position afresh, per symbol, as outside a batch, so a close after a cancel still sees what
the cancel left. The shared read is at most MAX_AGE_S wall seconds old when a symbol takes it (a slow
batch reads again); a failed shared read fails every symbol of the batch alike without being sent again
(each symbol's retry comes from its own CloseFailed), rather than as many failing reads as symbols.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

from ..broker.base import Broker
from ..core.model import OrderSnapshot
from ..errors import BrokerError

MAX_AGE_S = 2.0  # wall seconds: a shared read older than this is read again


@dataclass(frozen=True, slots=True)
class _Read:
    at: float  # monotonic
    orders: tuple[OrderSnapshot, ...]
    positions: dict[str, Decimal]


class SharedRead:
    """The symbols' open orders and positions: shared within a batch, per symbol outside one."""

    def __init__(self, broker: Broker, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.broker = broker
        self.monotonic = monotonic
        self._depth = 0  # batches nest (a reconcile inside a wake)
        self._read: _Read | None = None
        self._failed: BrokerError | None = None
        self._wrote: set[str] = set()  # symbols that acted since the read: their reads are their own

    @contextmanager
    def batch(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._read, self._failed, self._wrote = None, None, set()

    def open_orders(self, symbol: str) -> list[OrderSnapshot]:
        """`symbol`'s open orders, legs nested (Broker.list_open_orders(symbol))."""
        read = self._shared(symbol)
        if read is None:
            return self.broker.list_open_orders(symbol)
        return [o for o in read.orders if o.symbol == symbol]

    def position_qty(self, symbol: str) -> Decimal:
        """`symbol`'s signed position (Broker.get_position_qty), read after its open orders."""
        read = self._shared(symbol)
        if read is None:
            return self.broker.get_position_qty(symbol)
        return read.positions.get(symbol, Decimal(0))

    def wrote(self, symbol: str) -> None:
        """`symbol` changed its orders: what it reads next is read for it alone."""
        if self._depth:
            self._wrote.add(symbol)

    def _shared(self, symbol: str) -> _Read | None:
        if not self._depth or symbol in self._wrote:
            return None
        if self._failed is not None:
            raise self._failed
        now = self.monotonic()
        if self._read is None or now - self._read.at > MAX_AGE_S:
            try:
                orders = tuple(self.broker.list_open_orders())
                positions = self.broker.list_positions()
            except BrokerError as exc:
                self._failed = exc
                raise
            self._read = _Read(now, orders, positions)
        return self._read
