"""AlpacaBroker: the Broker protocol over Alpaca's trading API v2 and its trade_updates websocket (or the
simulator, which speaks the same). Its market data (bars) is `market_data`, an AlpacaMarketData on the
same account's clients. The SDK that carries the requests (`sdk`: alpaca-trade-api or alpaca-py) is
chosen by name (broker/sdks.py); everything here is the same for both."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ...core.events import OrderUpdate, SubmitBracket
from ...core.model import OrderSnapshot, Session
from ...errors import BrokerError, BrokerNotFound, BrokerRejected, OrderOutcomeUnknown
from ...redaction import Redactor
from ..base import AccountInfo, AssetInfo, FillActivity, MarketClock, SubmitOutcome
from ..sdks import DEFAULT_SDK, sdk_binding
from ..throttle import RequestThrottle
from ..timestamps import parse_time
from .convert import (
    account_from_dict,
    asset_from_dict,
    bracket_body,
    clock_from_dict,
    fill_from_dict,
    iter_orders,
    order_from_dict,
    position_qty_from_dict,
    rfc3339,
    session_from_dict,
)
from .marketdata import AlpacaMarketData
from .rest import AlpacaRest
from .streams import OnStatus, StreamThread, start_trade_updates

log = logging.getLogger(__name__)

ASSETS_ONE_BY_ONE = 5  # get_assets: more symbols than this are read with one list of every asset
ORDERS_PAGE = 500  # Alpaca's maximum `limit` for GET /v2/orders
ACTIVITIES_PAGE = 100  # page_size for account activities (max 100)
# A second POST with a client_order_id Alpaca already holds: 422 with this message. Its numeric code is
# reported as 40010001 by some and 42210000 by others (third-party live probes; alpaca-py #260 shows the
# message for a canceled order's id), so the status and the message decide, never the code.
DUPLICATE_CID = "client_order_id must be unique"
# GET /v2/orders:by_client_order_id for an id Alpaca does not hold: 404 {"code": 40410000, "message":
# "order not found"} (some report "order not found for <id>"). A 404 without it (a proxy, a wrong URL)
# says nothing about the order.
ORDER_NOT_FOUND = ("order not found", "code 40410000")


class AlpacaBroker:
    """The Broker protocol over Alpaca's REST v2 and trade_updates websocket (or the simulator)."""

    def __init__(
        self,
        key_id: str,
        secret_key: str,
        base_url: str,
        data_url: str,
        data_stream_url: str | None = None,
        feed: str = "iex",
        throttle: RequestThrottle | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        timeout: float = 10.0,
        *,
        max_attempts: int = 5,
        rng: Callable[[], float] | None = None,
        sdk: str = DEFAULT_SDK,
    ) -> None:
        if not key_id or not secret_key:
            raise ValueError("AlpacaBroker needs an API key id and secret key")
        self.binding = sdk_binding(sdk)  # a ConfigError naming the install command if it is missing
        log.debug("Alpaca adapter over %s %s", self.binding.name, self.binding.version)
        self._key_id = key_id
        self._secret_key = secret_key
        self.base_url = base_url.rstrip("/")
        self.data_url = data_url.rstrip("/")
        self.feed = feed
        sleep = sleep or time.sleep
        self.throttle = throttle or RequestThrottle(now=clock or time.monotonic, sleep=sleep)
        self.timeout = timeout
        self.redact = Redactor([secret_key, key_id])  # our keys out of every message we build
        self.rest = AlpacaRest(
            self.binding,
            key_id,
            secret_key,
            self.base_url,
            self.data_url,
            self.throttle,
            timeout,
            sleep=sleep,
            max_attempts=max_attempts,
            rng=rng,
            redact=self.redact,
        )
        stream_url = data_stream_url.rstrip("/") if data_stream_url else None
        self.market_data = AlpacaMarketData(
            self.rest, self.binding, self.data_url, stream_url, feed, key_id, secret_key
        )
        self._streams: list[StreamThread] = []

    # -- hygiene --------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"AlpacaBroker(base_url={self.base_url!r}, data_url={self.data_url!r}, feed={self.feed!r}, "
            f"sdk={self.sdk!r})"
        )

    __str__ = __repr__

    def __getstate__(self) -> None:
        raise TypeError("AlpacaBroker holds credentials and live connections: it cannot be pickled")

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far by this account's clients (all attempts)."""
        return self.rest.requests_sent

    @property
    def sdk(self) -> str:
        """The SDK under this adapter, as --sdk names it."""
        return self.binding.name

    # -- reads ----------------------------------------------------------------------------------
    def get_clock(self) -> MarketClock:
        return clock_from_dict(self.rest.get("GET /v2/clock", "/clock"))

    def get_sessions(self, start: date, end: date) -> list[Session]:
        rows = self.rest.get(
            "GET /v2/calendar", "/calendar", {"start": start.isoformat(), "end": end.isoformat()}
        )
        return [session_from_dict(r) for r in rows or []]

    def get_account(self) -> AccountInfo:
        return account_from_dict(self.rest.get("GET /v2/account", "/account"))

    def get_asset(self, symbol: str) -> AssetInfo:
        return asset_from_dict(self.rest.get(f"GET /v2/assets/{symbol}", f"/assets/{symbol}"))

    def get_assets(self, symbols: Sequence[str]) -> dict[str, AssetInfo]:
        """The assets of `symbols` by symbol (one the broker does not know is absent). Up to
        ASSETS_ONE_BY_ONE symbols are read one by one (GET /v2/assets/{symbol}); more, with one read of
        every active US equity (GET /v2/assets?status=active&asset_class=us_equity: Alpaca's list has no
        symbol filter and no pages; alpaca-trade-api's REST.list_assets and alpaca-py's
        TradingClient.get_all_assets(GetAssetsRequest) send the same request), and the symbols it lacks
        (inactive ones) one by one, so a universe's start costs a request or two rather than one a symbol."""
        wanted = list(dict.fromkeys(symbols))
        found: dict[str, AssetInfo] = {}
        if len(wanted) > ASSETS_ONE_BY_ONE:
            rows = self.rest.get(
                "GET /v2/assets", "/assets", {"status": "active", "asset_class": "us_equity"}
            )
            names = set(wanted)
            for row in rows or []:
                if row.get("symbol") in names:
                    found[str(row["symbol"])] = asset_from_dict(row)
        for symbol in wanted:
            if symbol not in found:
                with contextlib.suppress(BrokerNotFound):
                    found[symbol] = self.get_asset(symbol)
        return found

    def get_position_qty(self, symbol: str) -> Decimal:
        try:
            pos = self.rest.get(f"GET /v2/positions/{symbol}", f"/positions/{symbol}")
        except BrokerNotFound as exc:
            # Only Alpaca's own "position does not exist" proves flat: a 404 from a wrong URL does not.
            text = str(exc).lower()
            if "position does not exist" in text or "40410000" in text:
                return Decimal(0)
            raise
        return position_qty_from_dict(pos)

    def list_positions(self) -> dict[str, Decimal]:
        """Every open position: symbol -> signed quantity (short < 0)."""
        out: dict[str, Decimal] = {}
        for pos in self.rest.get("GET /v2/positions", "/positions") or []:
            out[str(pos["symbol"])] = position_qty_from_dict(pos)
        return out

    def list_open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        """Open orders, legs nested under an open parent; the open legs of a *filled* parent appear
        top-level. Two reads: Alpaca's ``status=open&nested=true`` alone drops a bracket entirely once
        its entry has filled (alpaca-trade-api-js #87); the flat list has the legs but not their parent.
        Merged by id. A filled bracket's stop-loss stays `held` and is in neither (alpaca-trade-api-python
        #322): the reconcile finds it among today's orders (core.reconcile.with_held_legs). Each read is
        paged (the account's whole book, at the flatten of a universe, may pass a page)."""
        nested = self._orders("open", None, symbol, nested=True)
        flat = self._orders("open", None, symbol, nested=False)
        known = {o.id for o in iter_orders(nested)}
        return nested + [o for o in flat if o.id not in known]

    def list_orders_since(self, after: datetime, symbol: str | None = None) -> list[OrderSnapshot]:
        return self._orders("all", after, symbol, nested=True)

    def _orders(
        self, status: str, after: datetime | None, symbol: str | None, *, nested: bool
    ) -> list[OrderSnapshot]:
        """GET /v2/orders, every page: oldest first, a full page followed by the orders submitted after
        its last one (1 µs back so that ties are not skipped; duplicates are dropped by id)."""
        out: list[OrderSnapshot] = []
        seen: set[str] = set()
        cursor = rfc3339(after) if after is not None else None
        while True:
            params: dict[str, Any] = {
                "status": status,
                "nested": "true" if nested else "false",
                "direction": "asc",
                "limit": ORDERS_PAGE,
            }
            if cursor is not None:
                params["after"] = cursor
            if symbol:
                params["symbols"] = symbol
            rows = self.rest.get("GET /v2/orders", "/orders", params) or []
            fresh = [r for r in rows if str(r["id"]) not in seen]
            for r in fresh:
                seen.add(str(r["id"]))
                out.append(order_from_dict(r))
            if len(rows) < ORDERS_PAGE or not fresh:
                return out
            last = rows[-1].get("submitted_at") or rows[-1].get("created_at")
            cursor = rfc3339(parse_time(last) - timedelta(microseconds=1))

    def get_order(self, order_id: str) -> OrderSnapshot:
        return order_from_dict(
            self.rest.get("GET /v2/orders/{id}", f"/orders/{order_id}", {"nested": "true"})
        )

    def get_order_by_client_id(self, client_order_id: str) -> OrderSnapshot | None:
        """None only on Alpaca's own "order not found"; any other 404 raises (it proves nothing)."""
        try:
            row = self.rest.get(
                "GET /v2/orders:by_client_order_id",
                "/orders:by_client_order_id",
                {"client_order_id": client_order_id},
            )
        except BrokerNotFound as exc:
            text = str(exc).lower()
            if any(mark in text for mark in ORDER_NOT_FOUND):
                return None
            raise
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
            rows = self.rest.get("GET /v2/account/activities/FILL", "/account/activities/FILL", params) or []
            out.extend(fill_from_dict(r) for r in rows)
            if len(rows) < ACTIVITIES_PAGE:
                return out
            next_token = str(rows[-1]["id"])
            if next_token == token:
                return out
            token = next_token

    # -- orders ---------------------------------------------------------------------------------
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
        body = bracket_body(order)
        what = f"POST /v2/orders {cid}"
        for attempt in (1, 2):
            try:
                row = self.rest.post(what, "/orders", body)
                return SubmitOutcome("accepted", order_from_dict(row))
            except BrokerRejected as exc:
                if exc.status != 422 or DUPLICATE_CID not in str(exc).lower():
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
            self.rest.delete(f"DELETE /v2/orders/{order_id}", f"/orders/{order_id}")
        except BrokerRejected as exc:  # 422 not cancelable: already filled / canceled
            log.info("cancel %s: %s", order_id, exc)
        except BrokerNotFound as exc:
            log.info("cancel %s: %s", order_id, exc)

    def cancel_orders(self, symbol: str, open_orders: Sequence[OrderSnapshot] | None = None) -> None:
        """Cancel every open order of `symbol`: parents first (an open parent takes its legs with it),
        then the open legs of filled parents (the working stop / take-profit) one by one. `open_orders`:
        the symbol's open orders as the caller has just read them (else they are read here)."""
        listed = self.list_open_orders(symbol) if open_orders is None else open_orders
        orders = [o for o in listed if not o.symbol or o.symbol == symbol]
        orders.sort(key=lambda o: 0 if o.legs else 1)
        done: set[str] = set()
        for order in orders:
            if order.id in done:
                continue
            if order.is_open:
                self.cancel_order(order.id)
                done.update(o.id for o in iter_orders([order]))
            else:
                for leg in iter_orders(order.legs):
                    if leg.is_open and leg.id not in done:
                        self.cancel_order(leg.id)
                        done.add(leg.id)

    def replace_order(self, order_id: str, limit_price: Decimal, client_order_id: str) -> OrderSnapshot:
        """PATCH /v2/orders/{id}: a new limit price (and client order id) for a working limit order; the
        answer is the new order that replaces it. Never resent: a doubtful outcome is a BrokerError."""
        body = {"limit_price": str(limit_price), "client_order_id": client_order_id}
        return order_from_dict(self.rest.patch(f"PATCH /v2/orders/{order_id}", f"/orders/{order_id}", body))

    def submit_stop(self, symbol: str, side: str, qty: Decimal, stop_price: Decimal) -> OrderSnapshot:
        """A simple stop order (good till canceled) that protects a position."""
        body = {
            "symbol": symbol,
            "qty": str(qty),
            "side": side,
            "type": "stop",
            "stop_price": str(stop_price),
            "time_in_force": "gtc",
        }
        return order_from_dict(self.rest.post(f"POST /v2/orders stop {symbol}", "/orders", body))

    def close_position(self, symbol: str) -> OrderSnapshot | None:
        try:
            body = self.rest.delete(f"DELETE /v2/positions/{symbol}", f"/positions/{symbol}")
        except BrokerNotFound:
            return None
        return order_from_dict(body) if isinstance(body, dict) and body.get("id") else None

    def close(self) -> None:
        for s in list(self._streams):
            s.stop()
        self._streams.clear()
        self.market_data.close()
        with contextlib.suppress(Exception):
            self.rest.close()

    # -- the trade stream -----------------------------------------------------------------------
    def stream_trade_updates(
        self, on_update: Callable[[OrderUpdate], None], on_status: OnStatus
    ) -> StreamThread:
        """trade_updates on a daemon thread; every (re)connection reported through on_status."""
        handle = start_trade_updates(
            self.binding,
            self._key_id,
            self._secret_key,
            self.base_url,
            self.timeout,
            on_update,
            on_status,
            self.redact,
        )
        self._streams.append(handle)
        return handle
