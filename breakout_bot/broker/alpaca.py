"""AlpacaBroker: the Broker protocol over alpaca-trade-api 3.2 (REST v2, market data v2, websockets).

This is the only module that imports alpaca_trade_api. What it changes in the library's behaviour:

* REST: the library's own retries are turned off (``_retry = 0``; it would blindly re-POST orders on
  429/504), every HTTP request waits for the shared RateLimiter and carries a timeout, the market
  data URL is ours (the library reads APCA_API_DATA_URL from the environment on every call), and the
  environment cannot switch us to OAuth or another API version behind our back. Retries are ours
  (broker/retry.py): bounded, jittered, never for an order submission.
* Streams: the library's ``_run_forever`` loops reconnect without backoff, swallow every non-websocket
  error (an auth failure becomes a reconnect storm every 10 ms) and tell nobody that a connection was
  lost. We reuse its connect/authenticate/listen handshakes but drive the connection ourselves on a
  daemon thread with its own asyncio loop: jittered backoff, and on_status("connected" |
  "disconnected" | "reconnecting" | "auth_failed", detail) at every transition so that the runner
  reconciles over REST after each reconnection.

The conversion helpers (order/bar/activity dict -> neutral types) are pure functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
import requests
from alpaca_trade_api.common import URL
from alpaca_trade_api.rest import REST
from alpaca_trade_api.stream import DataStream, TradingStream
from websockets.exceptions import ConnectionClosed

from ..config import Settings
from ..core.events import OrderUpdate, SubmitBracket
from ..core.model import Bar, OrderEvent, OrderSnapshot, OrderStatus, OrderType, Session
from ..errors import BrokerAuthError, BrokerError, BrokerNotFound, BrokerRejected, OrderOutcomeUnknown
from ..redaction import Redactor
from ..timestamps import parse_time
from .base import AccountInfo, AssetInfo, FillActivity, MarketClock, StreamStatus, SubmitOutcome
from .ratelimit import RateLimiter
from .retry import call_with_retries

log = logging.getLogger(__name__)

NEW_YORK = ZoneInfo("America/New_York")
UTC = timezone.utc

ORDERS_PAGE = 500  # Alpaca's maximum `limit` for GET /v2/orders
ACTIVITIES_PAGE = 100  # page_size for account activities (max 100)
BARS_PAGE = 10_000  # Alpaca's maximum `limit` for bars
DUPLICATE_CID = "client_order_id must be unique"

# websockets.connect parameters: ping every 10 s, a dead peer is noticed within 30 s.
WEBSOCKET_PARAMS: dict[str, Any] = {"ping_interval": 10, "ping_timeout": 20, "max_queue": 1024}

OnStatus = Callable[[StreamStatus, str], None]


# ============================================================================ pure conversions


def to_decimal(value: object) -> Decimal:
    """A decimal-as-string (or number) from Alpaca as a Decimal; never through float."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def _opt_decimal(value: object) -> Decimal | None:
    return None if value in (None, "") else to_decimal(value)


def _side(value: object) -> Any:
    text = str(value or "").lower()
    if text in ("buy", "buy_to_cover"):
        return "buy"
    if text in ("sell", "sell_short"):
        return "sell"
    raise ValueError(f"unknown order side {value!r}")


# Alpaca's trade_updates events, statuses and order types in the core's vocabulary (anything else is
# OTHER / ENDED). Sources: trading-api.json OrderStatus and the trade_updates event list (docs
# api-references/trading-api/streaming.md).
EVENTS: dict[str, OrderEvent] = {
    "new": OrderEvent.ACCEPTED,
    "accepted": OrderEvent.ACCEPTED,
    "pending_new": OrderEvent.ACCEPTED,
    "held": OrderEvent.ACCEPTED,
    "replaced": OrderEvent.ACCEPTED,
    "partial_fill": OrderEvent.PARTIAL_FILL,
    "fill": OrderEvent.FILL,
    "canceled": OrderEvent.CANCELED,
    "stopped": OrderEvent.CANCELED,
    "suspended": OrderEvent.CANCELED,
    "expired": OrderEvent.EXPIRED,
    "done_for_day": OrderEvent.EXPIRED,
    "rejected": OrderEvent.REJECTED,
}
STATUSES: dict[str, OrderStatus] = {
    "new": OrderStatus.NEW,
    "accepted": OrderStatus.NEW,
    "pending_new": OrderStatus.NEW,
    "accepted_for_bidding": OrderStatus.NEW,
    "calculated": OrderStatus.NEW,
    "pending_replace": OrderStatus.NEW,
    "held": OrderStatus.HELD,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "pending_cancel": OrderStatus.PENDING_CANCEL,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "replaced": OrderStatus.REPLACED,
}
TYPES: dict[str, OrderType] = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP_LIMIT,
    "trailing_stop": OrderType.TRAILING_STOP,
}


def order_from_dict(d: Mapping[str, Any]) -> OrderSnapshot:
    """An Alpaca Order object (REST or trade_updates) as an OrderSnapshot, legs included."""
    legs = d.get("legs") or ()
    return OrderSnapshot(
        id=str(d["id"]),
        client_order_id=str(d.get("client_order_id") or ""),
        symbol=str(d.get("symbol") or ""),
        side=_side(d.get("side")),
        type=TYPES.get(str(d.get("type") or d.get("order_type") or ""), OrderType.OTHER),
        status=STATUSES.get(str(d.get("status") or ""), OrderStatus.ENDED),
        qty=_opt_decimal(d.get("qty")) or Decimal(0),
        filled_qty=_opt_decimal(d.get("filled_qty")) or Decimal(0),
        filled_avg_price=_opt_decimal(d.get("filled_avg_price")),
        stop_price=_opt_decimal(d.get("stop_price")),
        limit_price=_opt_decimal(d.get("limit_price")),
        order_class=str(d.get("order_class") or ""),
        legs=tuple(order_from_dict(leg) for leg in legs),
    )


def trade_update_from_dict(data: Mapping[str, Any], received_at: datetime | None = None) -> OrderUpdate:
    """The `data` of a trade_updates message as an OrderUpdate: the execution's own qty/price."""
    order = data["order"]
    ts = data.get("timestamp") or order.get("updated_at")
    return OrderUpdate(
        event=EVENTS.get(str(data["event"]), OrderEvent.OTHER),
        order=order_from_dict(order),
        timestamp=parse_time(ts) if ts else (received_at or datetime.now(UTC)),
        execution_id=str(data["execution_id"]) if data.get("execution_id") else None,
        qty=_opt_decimal(data.get("qty")),
        price=_opt_decimal(data.get("price")),
    )


def bar_from_dict(d: Mapping[str, Any]) -> Bar:
    """A v2 bar (REST `bars` item or stream "b" message) as a Bar."""
    return Bar(
        t=parse_time(d["t"]),
        open=float(d["o"]),
        high=float(d["h"]),
        low=float(d["l"]),
        close=float(d["c"]),
        volume=float(d.get("v") or 0),
    )


def session_from_dict(d: Mapping[str, Any]) -> Session:
    """A /v2/calendar row ({"date","open","close"} in New York local time) as a Session."""
    day = date.fromisoformat(str(d["date"]))

    def at(hhmm: str) -> datetime:
        text = hhmm.strip()
        if ":" not in text and len(text) == 4:
            text = f"{text[:2]}:{text[2:]}"
        hh, mm = text.split(":")[:2]
        return datetime(day.year, day.month, day.day, int(hh), int(mm), tzinfo=NEW_YORK)

    return Session(date=day, open=at(str(d["open"])), close=at(str(d["close"])))


def clock_from_dict(d: Mapping[str, Any]) -> MarketClock:
    return MarketClock(
        timestamp=parse_time(d["timestamp"]),
        is_open=bool(d["is_open"]),
        next_open=parse_time(d["next_open"]),
        next_close=parse_time(d["next_close"]),
    )


def account_from_dict(d: Mapping[str, Any]) -> AccountInfo:
    return AccountInfo(
        status=str(d.get("status") or ""),
        equity=to_decimal(d.get("equity") or 0),
        cash=to_decimal(d.get("cash") or 0),
        buying_power=to_decimal(d.get("buying_power") or 0),
        trading_blocked=bool(d.get("trading_blocked") or d.get("account_blocked")),
        shorting_enabled=bool(d.get("shorting_enabled")),
        account_number=str(d.get("account_number") or ""),
    )


def asset_from_dict(d: Mapping[str, Any]) -> AssetInfo:
    return AssetInfo(
        symbol=str(d["symbol"]),
        status=str(d.get("status") or ""),
        tradable=bool(d.get("tradable")),
        shortable=bool(d.get("shortable")),
        easy_to_borrow=bool(d.get("easy_to_borrow")),
        fractionable=bool(d.get("fractionable")),
    )


def fill_from_dict(d: Mapping[str, Any]) -> FillActivity:
    """A FILL account activity. Its id is "<transaction time>::<execution id>"."""
    aid = str(d["id"])
    return FillActivity(
        id=aid,
        execution_id=aid.split("::", 1)[1] if "::" in aid else aid,
        order_id=str(d.get("order_id") or ""),
        symbol=str(d.get("symbol") or ""),
        side=_side(d.get("side")),
        qty=to_decimal(d["qty"]),
        price=to_decimal(d["price"]),
        cum_qty=to_decimal(d.get("cum_qty") or d["qty"]),
        leaves_qty=to_decimal(d.get("leaves_qty") or 0),
        transaction_time=parse_time(d["transaction_time"]),
        type=str(d.get("type") or "fill"),
    )


def rfc3339(ts: datetime) -> str:
    if ts.tzinfo is None:
        raise ValueError("timestamps sent to Alpaca must be timezone-aware")
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _iter_orders(orders: Iterable[OrderSnapshot]) -> Iterable[OrderSnapshot]:
    for o in orders:
        yield o
        yield from _iter_orders(o.legs)


# ============================================================================ REST plumbing


class _LimitedSession(requests.Session):
    """Every request: take a rate-limit slot first, and never wait forever for an answer."""

    def __init__(self, limiter: RateLimiter, timeout: float) -> None:
        super().__init__()
        self._limiter = limiter
        self._timeout = timeout
        self.sent = 0

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        self._limiter.acquire()
        self.sent += 1
        return super().request(method, url, *args, **kwargs)


class _Rest(REST):
    """alpaca_trade_api.REST with our URLs, no built-in retries, a timeout and the rate limiter."""

    def __init__(
        self, key_id: str, secret_key: str, base_url: str, data_url: str, limiter: RateLimiter, timeout: float
    ) -> None:
        super().__init__(key_id, secret_key, base_url.rstrip("/"), api_version="v2", raw_data=True)
        self._oauth = None  # the library picks APCA_API_OAUTH_TOKEN from the environment: never
        self._retry = 0  # the library would re-POST orders on 429/504; retries are ours
        self._retry_codes: list[int] = []
        self._data_url = URL(data_url.rstrip("/"))
        self._session.close()
        self._session: _LimitedSession = _LimitedSession(limiter, timeout)

    def data_get(
        self, path: str, data: dict[str, Any] | None = None, feed: str | None = None, api_version: str = "v1"
    ) -> Any:
        # The library reads APCA_API_DATA_URL from the environment here; we use the constructor's URL.
        if feed:
            data = dict(data or {})
            data["feed"] = feed
        return self._request("GET", path, data, base_url=self._data_url, api_version=api_version)

    def __repr__(self) -> str:
        return f"<_Rest {self._base_url}>"


# ============================================================================ streams


class _StreamThread:
    """One websocket client on a daemon thread with its own asyncio loop; the StreamHandle."""

    def __init__(self, name: str, body: Callable[[_StreamThread], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._body = body
        self._stopped = threading.Event()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._last = time.monotonic()
        self.connections = 0  # successful connections so far (diagnostics/tests)
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> _StreamThread:
        self._thread.start()
        self._ready.wait(5)
        return self

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._task = loop.create_task(self._body(self))
            self._ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
        except Exception:
            log.exception("%s: stream thread failed", self.name)
        finally:
            self._ready.set()
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    # -- StreamHandle ---------------------------------------------------------------------------
    @property
    def last_message_at(self) -> float:
        """time.monotonic() of the last message received (or of the start)."""
        return self._last

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def touch(self) -> None:
        self._last = time.monotonic()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(task.cancel)
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            self._thread.join(timeout)

    def __repr__(self) -> str:
        return f"<stream {self.name} alive={self.alive}>"


def _reconnect_delay(failures: int, base: float = 0.5, cap: float = 30.0) -> float:
    expo = min(cap, base * (2 ** max(0, failures - 1)))
    return expo / 2 + random.random() * expo / 2


def _emit(on_status: OnStatus, status: StreamStatus, detail: str) -> None:
    try:
        on_status(status, detail)
    except Exception:
        log.exception("on_status callback failed")


async def _close_quietly(stream: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(stream.close(), 5)


def _is_auth_refusal(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, ValueError) and any(
        s in text for s in ("failed to authenticate", "auth failed", "not authenticated", "unauthorized")
    )


# ============================================================================ the broker


class AlpacaBroker:
    """The Broker protocol over Alpaca's REST v2 / market data v2 / websockets (or the simulator)."""

    def __init__(
        self,
        key_id: str,
        secret_key: str,
        base_url: str,
        data_url: str,
        data_stream_url: str | None = None,
        feed: str = "iex",
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        timeout: float = 10.0,
        *,
        max_attempts: int = 5,
        rng: Callable[[], float] | None = None,
    ) -> None:
        if not key_id or not secret_key:
            raise ValueError("AlpacaBroker needs an API key id and secret key")
        self._key_id = key_id
        self._secret_key = secret_key
        self.base_url = base_url.rstrip("/")
        self.data_url = data_url.rstrip("/")
        self.data_stream_url = data_stream_url.rstrip("/") if data_stream_url else None
        self.feed = feed
        self._sleep = sleep or time.sleep
        self.limiter = limiter or RateLimiter(now=clock or time.monotonic, sleep=self._sleep)
        self.timeout = timeout
        self._max_attempts = max_attempts
        self._rng = rng or random.random
        self._rest = _Rest(key_id, secret_key, self.base_url, self.data_url, self.limiter, timeout)
        self._streams: list[_StreamThread] = []
        self.redact = Redactor([secret_key, key_id])  # our keys out of every message we build

    # -- hygiene --------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"AlpacaBroker(base_url={self.base_url!r}, data_url={self.data_url!r}, feed={self.feed!r})"

    __str__ = __repr__

    def __getstate__(self) -> None:
        raise TypeError("AlpacaBroker holds credentials and live connections: it cannot be pickled")

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far by this broker (all attempts)."""
        return int(self._rest._session.sent)

    def _call(self, what: str, fn: Callable[[], Any], *, idempotent: bool = True) -> Any:
        return call_with_retries(
            fn,
            idempotent=idempotent,
            what=what,
            max_attempts=self._max_attempts,
            sleep=self._sleep,
            rng=self._rng,
            scrub=self.redact,
        )

    def _get(self, what: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._call(what, lambda: self._rest.get(path, dict(params) if params else None))

    # -- reads ----------------------------------------------------------------------------------
    def get_clock(self) -> MarketClock:
        return clock_from_dict(self._get("GET /v2/clock", "/clock"))

    def get_sessions(self, start: date, end: date) -> list[Session]:
        rows = self._get(
            "GET /v2/calendar", "/calendar", {"start": start.isoformat(), "end": end.isoformat()}
        )
        return [session_from_dict(r) for r in rows or []]

    def get_account(self) -> AccountInfo:
        return account_from_dict(self._get("GET /v2/account", "/account"))

    def get_asset(self, symbol: str) -> AssetInfo:
        return asset_from_dict(self._get(f"GET /v2/assets/{symbol}", f"/assets/{symbol}"))

    def get_position_qty(self, symbol: str) -> Decimal:
        try:
            pos = self._get(f"GET /v2/positions/{symbol}", f"/positions/{symbol}")
        except BrokerNotFound as exc:
            # Only Alpaca's own "position does not exist" proves flat: a 404 from a wrong URL does not.
            text = str(exc).lower()
            if "position does not exist" in text or "40410000" in text:
                return Decimal(0)
            raise
        qty = to_decimal(pos["qty"])
        if str(pos.get("side", "")).lower() == "short" and qty > 0:
            qty = -qty
        return qty

    def list_positions(self) -> dict[str, Decimal]:
        """Every open position: symbol -> signed quantity (short < 0)."""
        out: dict[str, Decimal] = {}
        for pos in self._get("GET /v2/positions", "/positions") or []:
            qty = to_decimal(pos["qty"])
            if str(pos.get("side", "")).lower() == "short" and qty > 0:
                qty = -qty
            out[str(pos["symbol"])] = qty
        return out

    def list_open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        """Open orders, legs nested under an open parent; the open legs of a *filled* parent appear
        top-level. Two reads: Alpaca's ``status=open&nested=true`` alone drops a bracket entirely once
        its entry has filled (alpaca-trade-api-js #87), hiding the working stop; the flat list has the
        legs but not their parent. Merged by id."""
        base: dict[str, Any] = {"status": "open", "limit": ORDERS_PAGE}
        if symbol:
            base["symbols"] = symbol
        nested = [
            order_from_dict(r)
            for r in self._get("GET /v2/orders", "/orders", {**base, "nested": "true"}) or []
        ]
        flat = [
            order_from_dict(r)
            for r in self._get("GET /v2/orders", "/orders", {**base, "nested": "false"}) or []
        ]
        known = {o.id for o in _iter_orders(nested)}
        return nested + [o for o in flat if o.id not in known]

    def list_orders_since(self, after: datetime, symbol: str | None = None) -> list[OrderSnapshot]:
        out: list[OrderSnapshot] = []
        seen: set[str] = set()
        cursor = rfc3339(after)
        while True:
            params: dict[str, Any] = {
                "status": "all",
                "nested": "true",
                "after": cursor,
                "direction": "asc",
                "limit": ORDERS_PAGE,
            }
            if symbol:
                params["symbols"] = symbol
            rows = self._get("GET /v2/orders", "/orders", params) or []
            fresh = [r for r in rows if str(r["id"]) not in seen]
            for r in fresh:
                seen.add(str(r["id"]))
                out.append(order_from_dict(r))
            if len(rows) < ORDERS_PAGE or not fresh:
                return out
            # Next page: orders submitted after the last one (1 µs back so that ties are not skipped;
            # duplicates are dropped by id above).
            last = rows[-1].get("submitted_at") or rows[-1].get("created_at")
            cursor = rfc3339(parse_time(last) - timedelta(microseconds=1))

    def get_order(self, order_id: str) -> OrderSnapshot:
        return order_from_dict(self._get("GET /v2/orders/{id}", f"/orders/{order_id}", {"nested": "true"}))

    def get_order_by_client_id(self, client_order_id: str) -> OrderSnapshot | None:
        try:
            row = self._get(
                "GET /v2/orders:by_client_order_id",
                "/orders:by_client_order_id",
                {"client_order_id": client_order_id},
            )
        except BrokerNotFound:
            return None
        return order_from_dict(row)

    def fill_activities(self, since: datetime) -> list[FillActivity]:
        out: list[FillActivity] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "after": rfc3339(since),
                "direction": "asc",
                "page_size": ACTIVITIES_PAGE,
            }
            if token:
                params["page_token"] = token
            rows = self._get("GET /v2/account/activities/FILL", "/account/activities/FILL", params) or []
            out.extend(fill_from_dict(r) for r in rows)
            if len(rows) < ACTIVITIES_PAGE:
                return out
            next_token = str(rows[-1]["id"])
            if next_token == token:
                return out
            token = next_token

    # -- market data ----------------------------------------------------------------------------
    def bar_records(
        self, symbol: str, start: datetime, end: datetime, feed: str | None = None
    ) -> list[dict[str, Any]]:
        """Raw v2 one-minute bars (dicts with t,o,h,l,c,v,n,vw) for start..end, all pages."""
        path = f"/stocks/{symbol}/bars"
        base: dict[str, Any] = {
            "timeframe": "1Min",
            "start": rfc3339(start),
            "end": rfc3339(end),
            "adjustment": "raw",
            "limit": BARS_PAGE,
            "feed": feed or self.feed,
        }
        out: list[dict[str, Any]] = []
        token: str | None = None
        tokens: set[str] = set()
        while True:
            params = dict(base)
            if token:
                params["page_token"] = token
            resp = self._call(
                f"GET /v2/stocks/{symbol}/bars",
                lambda p=params: self._rest.data_get(path, data=p, api_version="v2"),  # type: ignore[misc]
            )
            out.extend(resp.get("bars") or [])
            token = resp.get("next_page_token")
            if not token:
                return out
            if token in tokens:
                raise BrokerError(f"bars pagination for {symbol} repeats a page token")
            tokens.add(token)

    def get_bars(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        bars = [bar_from_dict(r) for r in self.bar_records(symbol, start, end)]
        bars = [b for b in bars if start <= b.t < end]
        bars.sort(key=lambda b: b.t)
        return bars

    def get_latest_bar(self, symbol: str) -> Bar | None:
        """The latest one-minute bar of the feed (None when the feed has none)."""
        resp = self._call(
            f"GET /v2/stocks/{symbol}/bars/latest",
            lambda: self._rest.data_get(
                f"/stocks/{symbol}/bars/latest", data={"feed": self.feed}, api_version="v2"
            ),
        )
        bar = (resp or {}).get("bar")
        return bar_from_dict(bar) if bar else None

    # -- orders ---------------------------------------------------------------------------------
    @staticmethod
    def bracket_body(order: SubmitBracket) -> dict[str, Any]:
        """POST /v2/orders body for the bracket entry (prices and qty as strings, like Alpaca's own)."""
        return {
            "symbol": order.symbol,
            "qty": str(order.qty),
            "side": order.side,
            "type": "market",
            "time_in_force": "day",
            "order_class": "bracket",
            "take_profit": {"limit_price": str(order.take_profit_price)},
            "stop_loss": {"stop_price": str(order.stop_price)},
            "client_order_id": order.client_order_id,
        }

    def submit_bracket(self, order: SubmitBracket) -> SubmitOutcome:
        """Send the bracket once; resolve any doubt by client_order_id (never a blind resend).

        * 200 -> accepted.
        * 422 "client_order_id must be unique" -> an earlier attempt arrived: look it up, accepted.
        * other 4xx rejections -> rejected (BrokerAuthError propagates: the keys are wrong).
        * timeout / 5xx / 429 -> look the order up by client_order_id: found -> accepted; provably
          absent (404) -> send it once more with the same client_order_id (a duplicate would be
          refused by the broker, so this cannot create two orders); still unclear -> unknown.
        """
        cid = order.client_order_id
        body = self.bracket_body(order)
        what = f"POST /v2/orders {cid}"
        for attempt in (1, 2):
            try:
                row = self._call(what, lambda: self._rest.post("/orders", dict(body)), idempotent=False)
                return SubmitOutcome("accepted", order_from_dict(row))
            except BrokerRejected as exc:
                if DUPLICATE_CID not in str(exc):
                    return SubmitOutcome("rejected", None, str(exc))
                reason = f"{exc}: the order already exists"
            except OrderOutcomeUnknown as exc:
                reason = str(exc)
            log.warning("submit %s: %s; looking it up by client_order_id", cid, reason)
            try:
                found = self.get_order_by_client_id(cid)
            except BrokerError as exc:
                return SubmitOutcome("unknown", None, f"{reason}; lookup failed: {exc}")
            if found is not None:
                return SubmitOutcome("accepted", found, reason)
            if DUPLICATE_CID in reason:
                return SubmitOutcome("unknown", None, f"{reason}, but the lookup does not find it")
            if attempt == 1:
                log.warning("submit %s: the broker does not have it; sending once more", cid)
        return SubmitOutcome("unknown", None, reason)

    def cancel_order(self, order_id: str) -> None:
        """Cancel one order; 404 / 422 not cancelable (already filled or gone) are not errors."""
        try:
            self._call(f"DELETE /v2/orders/{order_id}", lambda: self._rest.delete(f"/orders/{order_id}"))
        except BrokerRejected as exc:  # 422 not cancelable: already filled / canceled
            log.info("cancel %s: %s", order_id, exc)
        except BrokerNotFound as exc:
            log.info("cancel %s: %s", order_id, exc)

    def cancel_orders(self, symbol: str) -> None:
        """Cancel every open order of `symbol`: parents first (an open parent takes its legs with it),
        then the open legs of filled parents (the working stop / take-profit) one by one."""
        orders = [o for o in self.list_open_orders(symbol) if not o.symbol or o.symbol == symbol]
        orders.sort(key=lambda o: 0 if o.legs else 1)
        done: set[str] = set()
        for order in orders:
            if order.id in done:
                continue
            if order.is_open:
                self.cancel_order(order.id)
                done.update(o.id for o in _iter_orders([order]))
            else:
                for leg in _iter_orders(order.legs):
                    if leg.is_open and leg.id not in done:
                        self.cancel_order(leg.id)
                        done.add(leg.id)

    def close_position(self, symbol: str) -> OrderSnapshot | None:
        try:
            body = self._call(
                f"DELETE /v2/positions/{symbol}", lambda: self._rest.delete(f"/positions/{symbol}")
            )
        except BrokerNotFound:
            return None
        return order_from_dict(body) if isinstance(body, dict) and body.get("id") else None

    def close(self) -> None:
        for s in list(self._streams):
            s.stop()
        self._streams.clear()
        with contextlib.suppress(Exception):
            self._rest.close()

    # -- streams --------------------------------------------------------------------------------
    def stream_trade_updates(
        self, on_update: Callable[[OrderUpdate], None], on_status: OnStatus
    ) -> _StreamThread:
        """trade_updates on a daemon thread; every (re)connection reported through on_status."""

        async def body(h: _StreamThread) -> None:
            await self._trade_stream_loop(h, on_update, on_status)

        handle = _StreamThread("trade-updates", body).start()
        self._streams.append(handle)
        return handle

    async def _trade_stream_loop(
        self, h: _StreamThread, on_update: Callable[[OrderUpdate], None], on_status: OnStatus
    ) -> None:
        async def _unused(_: object) -> None:  # the library sends "listen" only when a handler is set
            return None

        async def connect() -> Any:
            ts = TradingStream(
                self._key_id,
                self._secret_key,
                URL(self.base_url),
                raw_data=True,
                websocket_params=dict(WEBSOCKET_PARAMS),
            )
            ts._trade_updates_handler = _unused
            try:
                await asyncio.wait_for(ts._start_ws(), self.timeout)  # connect, authenticate, listen
            except BaseException:
                await _close_quietly(ts)
                raise
            return ts

        await self._reconnecting(
            h, "trading stream", connect, lambda raw: self._on_trade_message(raw, on_update), on_status
        )

    async def _reconnecting(
        self,
        h: _StreamThread,
        name: str,
        connect: Callable[[], Coroutine[Any, Any, Any]],
        on_message: Callable[[Any], None],
        on_status: OnStatus,
    ) -> None:
        """Connect, read until the connection drops, reconnect with jittered backoff; report every
        (re)connection so the runner reconciles over REST. The library's own loop retries silently."""
        failures = 0
        while not h.stopped:
            try:
                stream = await connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _is_auth_refusal(exc):
                    _emit(on_status, "auth_failed", f"{name}: the server refused the API keys")
                    return
                failures += 1
                delay = _reconnect_delay(failures)
                _emit(
                    on_status, "reconnecting", self.redact(f"{name}: {_describe(exc)}; retry in {delay:.1f}s")
                )
                await asyncio.sleep(delay)
                continue
            h.connections += 1
            h.touch()
            opened = time.monotonic()
            _emit(on_status, "connected", f"{name} {stream._endpoint}")
            detail = "closed"
            try:
                while True:
                    raw = await stream._ws.recv()
                    h.touch()
                    on_message(raw)
            except asyncio.CancelledError:
                await _close_quietly(stream)
                raise
            except ConnectionClosed as exc:
                detail = f"connection closed (code {exc.code}{', ' + exc.reason if exc.reason else ''})"
            except Exception as exc:
                detail = _describe(exc)
            await _close_quietly(stream)
            if h.stopped:
                return
            _emit(on_status, "disconnected", self.redact(f"{name}: {detail}"))
            failures = 1 if time.monotonic() - opened > 10 else failures + 1
            await asyncio.sleep(_reconnect_delay(failures))

    def _on_trade_message(self, raw: str | bytes, on_update: Callable[[OrderUpdate], None]) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            log.warning("trading stream: undecodable message ignored")
            return
        if not isinstance(msg, dict) or msg.get("stream") != "trade_updates":
            return
        try:
            update = trade_update_from_dict(msg["data"], datetime.now(UTC))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("trading stream: malformed trade update ignored: %s", exc)
            return
        try:
            on_update(update)
        except Exception:
            log.exception("on_update callback failed")

    def stream_bars(
        self,
        symbols: Sequence[str],
        on_bar: Callable[[str, Bar], None],
        on_status: OnStatus,
    ) -> _StreamThread:
        """Minute bars of `symbols` from the market-data websocket (msgpack), on a daemon thread."""
        if not self.data_stream_url:
            raise BrokerError("no market data stream URL configured")
        wanted = [s.upper() for s in symbols]

        async def body(h: _StreamThread) -> None:
            await self._bar_stream_loop(h, wanted, on_bar, on_status)

        handle = _StreamThread("bars", body).start()
        self._streams.append(handle)
        return handle

    async def _bar_stream_loop(
        self,
        h: _StreamThread,
        symbols: list[str],
        on_bar: Callable[[str, Bar], None],
        on_status: OnStatus,
    ) -> None:
        async def _unused(_: object) -> None:
            return None

        assert self.data_stream_url is not None
        data_stream_url = self.data_stream_url

        async def connect() -> Any:
            ds = DataStream(
                self._key_id,
                self._secret_key,
                URL(data_stream_url),
                raw_data=True,
                feed=self.feed,
                websocket_params=dict(WEBSOCKET_PARAMS),
            )
            ds._handlers["bars"] = {s: _unused for s in symbols}
            try:
                await asyncio.wait_for(ds._start_ws(), self.timeout)  # connected, auth
                await ds._subscribe_all()
            except BaseException:
                await _close_quietly(ds)
                raise
            return ds

        await self._reconnecting(
            h, "bar stream", connect, lambda raw: self._on_bar_message(raw, on_bar), on_status
        )

    @staticmethod
    def _on_bar_message(raw: str | bytes, on_bar: Callable[[str, Bar], None]) -> None:
        try:
            msgs = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
        except Exception:
            log.warning("bar stream: undecodable message ignored")
            return
        for msg in msgs if isinstance(msgs, list) else [msgs]:
            if not isinstance(msg, dict):
                continue
            kind = msg.get("T")
            if kind == "b":
                try:
                    bar = bar_from_dict(msg)
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("bar stream: malformed bar ignored: %s", exc)
                    continue
                try:
                    on_bar(str(msg.get("S")), bar)
                except Exception:
                    log.exception("on_bar callback failed")
            elif kind == "error":
                log.error("bar stream error: %s (%s)", msg.get("msg"), msg.get("code"))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = [
    "AlpacaBroker",
    "account_from_dict",
    "asset_from_dict",
    "bar_from_dict",
    "clock_from_dict",
    "fill_from_dict",
    "order_from_dict",
    "parse_time",
    "session_from_dict",
    "trade_update_from_dict",
]


def broker_from_settings(settings: Settings, **options: Any) -> AlpacaBroker:
    """The adapter for the keys and URLs in `settings` (paper or live); `options` go to AlpacaBroker."""
    if settings.key_id is None or settings.secret_key is None:
        raise BrokerAuthError("no Alpaca keys configured")
    return AlpacaBroker(
        settings.key_id,
        settings.secret_key,
        base_url=settings.base_url,
        data_url=settings.data_url,
        data_stream_url=settings.stream_url,
        feed=settings.feed,
        **options,
    )
