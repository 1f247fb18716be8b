"""The one place that touches alpaca-py (0.44) and its internals; SDK_BINDING is this SDK's part of the
adapter (broker/alpaca/binding.py). The privates we rely on are listed in PRIVATE_ATTRIBUTES and
PRIVATE_COROUTINES, and tests/broker/test_alpacapy.py fails on an alpaca-py that lacks one.

What we change in the library's behaviour, and why (read from alpaca-py 0.44's source, probed against
the simulator; docs/architecture.md, "Two SDKs"):

* REST (`PyRest`): `TradingClient` and `StockHistoricalDataClient` with ``raw_data=True`` — we read
  Alpaca's JSON with our own conversions, never its models (ids as UUID, prices as float, naive
  calendar datetimes, a ValidationError for a whole list on one unknown status, a TradeActivity model
  that cannot parse a Trading-API FILL). Requests go through the clients' public raw ``get``/``post``/
  ``delete`` on the paths our other adapter uses (no typed request models: they send prices and qty as
  floats). Their constructors take no retry settings and ``RESTClient`` treats ``retry_attempts=0`` as
  "the default, 3"; that default retries **every** method, POST included, on 429 and 504 after a fixed
  3 s — a 504 after the order was accepted re-POSTs it. So ``_retry = 0`` and ``_retry_codes = []``
  (retries are broker/retry.py's, never of a POST). Their ``requests.Session`` (no timeout at all) is
  replaced by ours (throttle and timeout: rest.py).
* Streams (`open_trade_updates`, `open_bars`): alpaca-py's ``run()`` loops reconnect silently (the
  runner would never reconcile), retry refused keys forever, and ``stop()`` takes up to 5 s (and raises
  before ``run()``). We reuse only its handshakes (``_start_ws``: connect, authenticate and, for the
  trading stream, listen; ``_send_subscribe_msg`` for the data stream) and read ``_ws`` ourselves
  (streams.py), as with alpaca-trade-api. Both use ``websockets.legacy`` (alpaca-py #743 plans to move
  off it; then these privates change and the test above fails first).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import alpaca
import requests
from alpaca.data.enums import DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.live.stock import StockDataStream
from alpaca.trading.client import TradingClient
from alpaca.trading.stream import TradingStream

from ..alpaca.binding import WEBSOCKET_PARAMS, OpenStream, SdkBinding, handshake

# alpaca-py internals this module uses: attributes its constructors set, and coroutine methods we call
# with no arguments.
PRIVATE_ATTRIBUTES: dict[type, tuple[str, ...]] = {
    TradingClient: ("_retry", "_retry_codes", "_session", "_base_url"),
    StockHistoricalDataClient: ("_retry", "_retry_codes", "_session", "_base_url"),
    TradingStream: ("_trade_updates_handler", "_endpoint", "_ws"),
    StockDataStream: ("_handlers", "_endpoint", "_ws"),
}
PRIVATE_COROUTINES: dict[type, tuple[str, ...]] = {
    TradingStream: ("_start_ws", "close"),
    StockDataStream: ("_start_ws", "_send_subscribe_msg", "close"),
}


def _no_retries_our_session(client: Any, session: requests.Session) -> None:
    client._retry = 0  # 0 passed to the constructor would mean "3"
    client._retry_codes = []
    client._session.close()
    client._session = session


class PyRest:
    """alpaca-py's trading and market-data REST clients, raw JSON, on our session, without retries."""

    def __init__(
        self, key_id: str, secret_key: str, base_url: str, data_url: str, session: requests.Session
    ) -> None:
        # url_override is the host root (alpaca-py adds /v2); with it, `paper` is ignored: the URL
        # alone says paper or live, as our settings check it.
        self._trading = TradingClient(key_id, secret_key, raw_data=True, url_override=base_url.rstrip("/"))
        self._data = StockHistoricalDataClient(
            key_id, secret_key, raw_data=True, url_override=data_url.rstrip("/")
        )
        self._session = session
        for client in (self._trading, self._data):
            _no_retries_our_session(client, session)

    def get(self, path: str, data: dict[str, Any] | None = None) -> Any:
        return self._trading.get(path, data)

    def post(self, path: str, data: dict[str, Any] | None = None) -> Any:
        return self._trading.post(path, data)

    def patch(self, path: str, data: dict[str, Any] | None = None) -> Any:
        return self._trading.patch(path, data)

    def delete(self, path: str, data: dict[str, Any] | None = None) -> Any:
        return self._trading.delete(path, data)  # a dict goes as query parameters on DELETE

    def data_get(self, path: str, data: dict[str, Any] | None = None, api_version: str = "v2") -> Any:
        return self._data.get(path, data, api_version=api_version)

    def close(self) -> None:
        self._session.close()

    # What we set, read back (diagnostics and the adapter's tests).
    @property
    def retries(self) -> int:
        return max(int(self._trading._retry), int(self._data._retry))

    @property
    def retry_codes(self) -> list[int]:
        return sorted({*self._trading._retry_codes, *self._data._retry_codes})

    @property
    def sessions(self) -> tuple[requests.Session, requests.Session]:
        return self._trading._session, self._data._session

    @property
    def data_url(self) -> str:
        return str(self._data._base_url)

    def __repr__(self) -> str:
        return f"<PyRest {self._trading._base_url}>"


def websocket_url(url: str, path: str) -> str:
    """http(s)://host -> ws(s)://host + path (as alpaca-trade-api derives its stream URLs)."""
    return re.sub(r"^http", "ws", url.rstrip("/")) + path


async def _unused(_: object) -> None:  # alpaca-py only sends "listen" for a set handler
    return None


def _opened(stream: Any) -> OpenStream:
    return OpenStream(str(stream._endpoint), stream._ws.recv, stream.close)


async def open_trade_updates(key_id: str, secret_key: str, base_url: str, timeout: float) -> OpenStream:
    """trade_updates on <base_url as ws>/stream: connected, authenticated and listening."""
    ts: Any = TradingStream(
        key_id,
        secret_key,
        raw_data=True,
        url_override=websocket_url(base_url, "/stream"),
        websocket_params=dict(WEBSOCKET_PARAMS),
    )
    ts._trade_updates_handler = _unused
    return await handshake([ts._start_ws], ts.close, lambda: _opened(ts), timeout)


async def open_bars(
    key_id: str, secret_key: str, url: str, feed: str, symbols: Sequence[str], timeout: float
) -> OpenStream:
    """Minute bars on <url as ws>/v2/<feed> (alpaca-py takes the whole endpoint): connected,
    authenticated (msgpack, as alpaca-py always asks) and subscribed to `symbols`."""
    ds: Any = StockDataStream(
        key_id,
        secret_key,
        raw_data=True,
        feed=DataFeed(feed),
        url_override=websocket_url(url, f"/v2/{feed}"),
        websocket_params=dict(WEBSOCKET_PARAMS),
    )
    ds._handlers["bars"] = {s: _unused for s in symbols}
    return await handshake([ds._start_ws, ds._send_subscribe_msg], ds.close, lambda: _opened(ds), timeout)


SDK_BINDING = SdkBinding(
    name="alpaca-py",
    version=str(alpaca.__version__),
    rest=PyRest,
    open_trade_updates=open_trade_updates,
    open_bars=open_bars,
)
