"""What the bot needs from a broker, as two protocols: `Broker` (trading) and `MarketData` (bars), so
that execution and data can come from different places.

Adapters (broker/alpaca/ today) translate their wire objects into these plain types and the core's
vocabularies, so nothing above this layer imports an SDK. Every method either returns the broker's
truth or raises a BrokerError subclass (errors.py): a failed read is never reported as "nothing there".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, Protocol

from ..core.events import OrderUpdate, SubmitBracket
from ..core.model import Bar, OrderSnapshot, Session
from ..core.valuetype import value_type


@value_type
class MarketClock:
    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


@value_type
class AccountInfo:
    status: str
    equity: Decimal
    cash: Decimal
    buying_power: Decimal
    trading_blocked: bool
    shorting_enabled: bool
    account_number: str = ""


@value_type
class AssetInfo:
    symbol: str
    status: str
    tradable: bool
    shortable: bool
    easy_to_borrow: bool
    fractionable: bool


@value_type
class FillActivity:
    """A FILL account activity (REST): the ledger the stream is reconciled against."""

    id: str
    execution_id: str  # the part after "::" in Alpaca's activity id
    order_id: str
    symbol: str
    side: Literal["buy", "sell"]
    qty: Decimal
    price: Decimal
    cum_qty: Decimal
    leaves_qty: Decimal
    transaction_time: datetime
    type: str  # fill | partial_fill


@value_type
class SubmitOutcome:
    """accepted: the broker has the order. rejected: it refused (do not resend).
    unknown: a timeout/5xx left it unclear; resolve with get_order_by_client_id, never by resending."""

    status: Literal["accepted", "rejected", "unknown"]
    order: OrderSnapshot | None = None
    reason: str = ""


# "refused": the server will not serve this stream (a data stream's 406/409): it has stopped.
StreamStatus = Literal["connected", "disconnected", "reconnecting", "auth_failed", "refused"]


class StreamHandle(Protocol):
    def stop(self) -> None: ...

    @property
    def last_message_at(self) -> float:
        """time.monotonic() of the last message (heartbeat for the watchdog)."""
        ...


class Broker(Protocol):
    """Trading at one account. An adapter implements:

    Required by the trading loop (live/):
        get_clock, get_sessions, get_account, get_position_qty, list_open_orders, list_orders_since,
        get_order, get_order_by_client_id, submit_bracket, cancel_order, cancel_orders, close_position,
        fill_activities, stream_trade_updates, close
    Required by the commands: get_asset (check), get_assets (run's preflight, the reconcile's
        shortability), list_positions (flatten)
    Optional (not part of this protocol; callers check for them):
        replace_order(order_id, limit_price, client_order_id) -> OrderSnapshot -- the flatten replaces
            a bracket's take-profit by a marketable limit (the stop keeps working); without it the
            executor cancels the legs and closes
        submit_stop(symbol, side, qty, stop_price) -> OrderSnapshot -- a protective stop for a position
            whose close was refused
        requests_sent -- HTTP requests sent so far (the bars command reports it)

    `submit_bracket` never resends blindly: its SubmitOutcome says accepted, rejected or unknown.
    """

    def get_clock(self) -> MarketClock: ...

    def get_sessions(self, start: date, end: date) -> list[Session]: ...

    def get_account(self) -> AccountInfo: ...

    def get_asset(self, symbol: str) -> AssetInfo: ...

    def get_assets(self, symbols: Sequence[str]) -> dict[str, AssetInfo]:
        """The assets of `symbols` by symbol, in as few requests as the broker allows; a symbol the
        broker does not know is absent (any other failure raises)."""
        ...

    def get_position_qty(self, symbol: str) -> Decimal:
        """Signed quantity (short < 0); 0 when the broker says there is no position."""
        ...

    def list_positions(self) -> dict[str, Decimal]:
        """Every open position: symbol -> signed quantity."""
        ...

    def list_open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        """Open orders, bracket legs nested under their parent."""
        ...

    def list_orders_since(self, after: datetime, symbol: str | None = None) -> list[OrderSnapshot]:
        """All orders (any status) submitted after `after`, legs nested."""
        ...

    def get_order(self, order_id: str) -> OrderSnapshot: ...

    def get_order_by_client_id(self, client_order_id: str) -> OrderSnapshot | None:
        """The order with our client_order_id; None only when the broker provably has none (its own
        "order not found"); any other failure raises. An adapter resolves an unknown submission with it
        (inside submit_bracket), and the machine asks for an entry still unanswered (core/pending.py)."""
        ...

    def submit_bracket(self, order: SubmitBracket) -> SubmitOutcome: ...

    def cancel_order(self, order_id: str) -> None:
        """Cancel one order (404/422 not cancelable: already gone, not an error)."""
        ...

    def cancel_orders(self, symbol: str, open_orders: Sequence[OrderSnapshot] | None = None) -> None:
        """Cancel every open order of `symbol` (legs included); `open_orders`, when given, are the
        symbol's open orders as the caller has just read them (list_open_orders), so they are not read
        again."""
        ...

    def close_position(self, symbol: str) -> OrderSnapshot | None:
        """Market-close the whole position; returns the closing order (None when flat)."""
        ...

    def fill_activities(self, since: datetime) -> list[FillActivity]: ...

    def stream_trade_updates(
        self,
        on_update: Callable[[OrderUpdate], None],
        on_status: Callable[[StreamStatus, str], None],
    ) -> StreamHandle:
        """Start the trade_updates websocket on its own thread; reconnects with backoff by itself and
        reports every (re)connection through on_status so the runner can reconcile over REST."""
        ...

    def close(self) -> None: ...


class MarketData(Protocol):
    """One-minute bars. An adapter implements:

    Required: get_bars_multi (the trading loop polls every symbol's bars with it once a minute, in one
        request however many symbols, and reads the boxes' history with it), get_bars (one symbol's)
    Required by `check`: get_latest_bar
    Optional: stream_bars (`run --bars stream`; an adapter without a stream raises BrokerError and the
        minute poll carries on)
    """

    def get_bars(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        """Closed one-minute bars with start <= t < end, oldest first (all pages)."""
        ...

    def get_bars_multi(self, symbols: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        """Every symbol's closed one-minute bars with start <= t < end, oldest first (all pages); each
        symbol asked for is a key, with [] when it has none."""
        ...

    def get_latest_bar(self, symbol: str) -> Bar | None:
        """The feed's latest one-minute bar (None when it has none)."""
        ...

    def stream_bars(
        self,
        symbols: Sequence[str],
        on_bar: Callable[[str, Bar], None],
        on_status: Callable[[StreamStatus, str], None],
    ) -> StreamHandle:
        """Minute bars from a websocket, on its own thread (reconnects by itself)."""
        ...
