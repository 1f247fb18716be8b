"""An in-memory broker and a stepped clock, for the runner's unit tests (no server, no threads).

`FakeBroker` is the Broker and the MarketData protocol over the backtest's broker (backtest/broker.py)
as its matching engine: one symbol, bars given up front, each bar traded once the clock has passed its
close; order updates go to the trade stream callback at once. It records every call (`calls`), can
fail a call on demand (`fail`) and can hold orders the bot did not send (`foreign`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from ..backtest.broker import BacktestBroker
from ..broker.base import AccountInfo, AssetInfo, FillActivity, MarketClock, StreamStatus, SubmitOutcome
from ..core.events import OrderUpdate, SubmitBracket
from ..core.model import BAR_LENGTH, Bar, OrderSnapshot, Session
from ..errors import BrokerError, BrokerNotFound


class SteppedClock:
    """The Clock protocol on a time that moves only when the runner waits (as the simulator's stepped
    clock): a wait jumps to its end at once."""

    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self._now

    def wall_timeout(self, until: datetime) -> float:
        return 0.0

    def reached(self, until: datetime) -> None:
        if until > self._now:
            self._now = until

    def monotonic(self) -> float:
        return self._now.timestamp()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._now += timedelta(seconds=seconds)


@dataclass
class _Handle:
    stopped: bool = False
    last_message_at: float = 0.0

    def stop(self) -> None:
        self.stopped = True


@dataclass
class FakeBroker:
    symbol: str
    session: Session
    bars: Sequence[Bar]
    clock: SteppedClock
    equity: Decimal = Decimal(100_000)
    calls: list[str] = field(default_factory=list)
    # method name -> the error it raises, `times` times (a negative count: always)
    fail: dict[str, tuple[BrokerError, int]] = field(default_factory=dict)
    foreign: list[OrderSnapshot] = field(default_factory=list)  # open orders the bot did not send
    stream_status: StreamStatus = "connected"

    def __post_init__(self) -> None:
        self.engine = BacktestBroker(self.symbol)
        self._traded = 0  # bars handed to the engine so far
        self._on_update: Callable[[OrderUpdate], None] | None = None

    # ------------------------------------------------------------------ plumbing
    def _call(self, name: str) -> None:
        """Record the call, trade the bars the clock has passed, and fail when told to."""
        self.calls.append(name)
        self._trade()
        failure = self.fail.get(name)
        if failure is not None:
            error, times = failure
            if times != 0:
                self.fail[name] = (error, times - 1)
                raise error

    def _trade(self) -> None:
        now = self.clock.now()
        while self._traded < len(self.bars) and self.bars[self._traded].end <= now:
            bar = self.bars[self._traded]
            self._traded += 1
            if self.engine.busy:
                self._push(self.engine.on_bar(int(bar.t.timestamp()), bar.open, bar.high, bar.low))

    def _push(self, updates: list[OrderUpdate]) -> None:
        if self._on_update is not None:
            for update in updates:
                self._on_update(update)

    # ------------------------------------------------------------------ Broker
    def get_clock(self) -> MarketClock:
        self._call("get_clock")
        now = self.clock.now()
        s = self.session
        return MarketClock(now, s.open <= now < s.close, s.open + timedelta(days=1), s.close)

    def get_sessions(self, start: date, end: date) -> list[Session]:
        self._call("get_sessions")
        return [self.session] if start <= self.session.date <= end else []

    def get_account(self) -> AccountInfo:
        self._call("get_account")
        return AccountInfo("ACTIVE", self.equity, self.equity, 4 * self.equity, False, True)

    def get_asset(self, symbol: str) -> AssetInfo:
        self._call("get_asset")
        return AssetInfo(symbol, "active", True, True, True, False)

    def get_assets(self, symbols: Sequence[str]) -> dict[str, AssetInfo]:
        self._call("get_assets")
        return {s: AssetInfo(s, "active", True, True, True, False) for s in symbols}

    def get_position_qty(self, symbol: str) -> Decimal:
        self._call("get_position_qty")
        return self.engine.get_position_qty(symbol)

    def list_positions(self) -> dict[str, Decimal]:
        self._call("list_positions")
        qty = self.engine.get_position_qty(self.symbol)
        return {self.symbol: qty} if qty else {}

    def list_open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        self._call("list_open_orders")
        return [*self.engine.list_open_orders(symbol), *(o for o in self.foreign if o.is_open)]

    def list_orders_since(self, after: datetime, symbol: str | None = None) -> list[OrderSnapshot]:
        self._call("list_orders_since")
        return [o.snapshot() for o in self.engine.orders.values() if o.submitted_at > after]

    def get_order(self, order_id: str) -> OrderSnapshot:
        self._call("get_order")
        return self.engine.get_order(order_id)

    def get_order_by_client_id(self, client_order_id: str) -> OrderSnapshot | None:
        self._call("get_order_by_client_id")
        return self.engine.get_order_by_client_id(client_order_id)

    def submit_bracket(self, order: SubmitBracket) -> SubmitOutcome:
        self._call("submit_bracket")
        updates = self.engine.submit_bracket(order, self.clock.now())
        return SubmitOutcome("accepted", updates[0].order)

    def cancel_order(self, order_id: str) -> None:
        self._call("cancel_order")
        for i, o in enumerate(self.foreign):
            if o.id == order_id:
                del self.foreign[i]
                return
        raise BrokerNotFound(f"order {order_id} not found")

    def cancel_orders(self, symbol: str, open_orders: Sequence[OrderSnapshot] | None = None) -> None:
        self._call("cancel_orders")
        self._push(self.engine.cancel_orders(symbol, self.clock.now()))

    def close_position(self, symbol: str) -> OrderSnapshot | None:
        self._call("close_position")
        updates = self.engine.close_position(symbol, self.clock.now())
        self._push(updates)
        return updates[0].order if updates else None

    def fill_activities(self, since: datetime) -> list[FillActivity]:
        self._call("fill_activities")
        return self.engine.fill_activities(since)

    def stream_trade_updates(
        self, on_update: Callable[[OrderUpdate], None], on_status: Callable[[StreamStatus, str], None]
    ) -> _Handle:
        self.calls.append("stream_trade_updates")
        self._on_update = on_update
        on_status(self.stream_status, "fake stream")
        return _Handle()

    def close(self) -> None:
        self.calls.append("close")

    # ------------------------------------------------------------------ MarketData
    def get_bars(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        self._call("get_bars")
        return [b for b in self.bars if start <= b.t < end and b.t + BAR_LENGTH <= self.clock.now()]

    def get_bars_multi(self, symbols: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        """The same bars for every symbol (the fake has one tape)."""
        self._call("get_bars_multi")
        bars = [b for b in self.bars if start <= b.t < end and b.t + BAR_LENGTH <= self.clock.now()]
        return {s: list(bars) for s in symbols}

    def get_latest_bar(self, symbol: str) -> Bar | None:
        self._call("get_latest_bar")
        closed = [b for b in self.bars if b.end <= self.clock.now()]
        return closed[-1] if closed else None

    def stream_bars(
        self,
        symbols: Sequence[str],
        on_bar: Callable[[str, Bar], None],
        on_status: Callable[[StreamStatus, str], None],
    ) -> _Handle:
        raise BrokerError("the fake broker has no bar stream")
