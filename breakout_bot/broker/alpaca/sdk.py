"""The one place that reaches into alpaca-trade-api 3.2's internals (its privates change without notice);
SDK_BINDING is this SDK's part of the adapter (binding.py).

What we change in the library's behaviour, and why:

* REST (`SdkRest`): its own retries are off (``_retry = 0``: it would blindly re-POST orders on
  429/504), its HTTP session is ours (rest.py: throttle and timeout on every request), the market data
  URL is the constructor's (the library reads APCA_API_DATA_URL from the environment on every call),
  and the environment cannot switch it to OAuth behind our back. Retries are ours (broker/retry.py).
* Streams (`open_trade_updates`, `open_bars`): the library's ``_run_forever`` loops reconnect without
  backoff, swallow every non-websocket error (an auth failure becomes a reconnect storm every 10 ms)
  and tell nobody that a connection was lost. We reuse only its connect/authenticate/listen (and
  subscribe) handshakes and read the socket ourselves (streams.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import alpaca_trade_api
import requests
from alpaca_trade_api.common import URL
from alpaca_trade_api.rest import REST
from alpaca_trade_api.stream import DataStream, TradingStream

from .binding import WEBSOCKET_PARAMS, OpenStream, SdkBinding, handshake


class SdkRest(REST):
    """alpaca_trade_api.REST with our URLs and HTTP session, and none of its own retries."""

    def __init__(
        self, key_id: str, secret_key: str, base_url: str, data_url: str, session: requests.Session
    ) -> None:
        super().__init__(key_id, secret_key, base_url.rstrip("/"), api_version="v2", raw_data=True)
        self._oauth = None  # the library picks APCA_API_OAUTH_TOKEN from the environment: never
        self._retry = 0  # the library would re-POST orders on 429/504; retries are ours
        self._retry_codes: list[int] = []
        self._data_url = URL(data_url.rstrip("/"))
        self._session.close()
        self._session: requests.Session = session

    def data_get(self, path: str, data: dict[str, Any] | None = None, api_version: str = "v2") -> Any:
        # The library reads APCA_API_DATA_URL from the environment here; we use the constructor's URL.
        return self._request("GET", path, data, base_url=self._data_url, api_version=api_version)

    # What we set, read back (diagnostics and the adapter's tests).
    @property
    def retries(self) -> int:
        return int(self._retry)

    @property
    def retry_codes(self) -> list[int]:
        return list(self._retry_codes)

    @property
    def oauth(self) -> object:
        return self._oauth

    @property
    def api_version(self) -> str:
        return str(self._api_version)

    @property
    def data_url(self) -> str:
        return str(self._data_url)

    def __repr__(self) -> str:
        return f"<SdkRest {self._base_url}>"


def _opened(stream: Any) -> OpenStream:
    return OpenStream(str(stream._endpoint), stream._ws.recv, stream.close)


async def _unused(_: object) -> None:  # the library only sends "listen"/"subscribe" for set handlers
    return None


async def open_trade_updates(key_id: str, secret_key: str, base_url: str, timeout: float) -> OpenStream:
    """A trade_updates websocket: connected, authenticated and listening."""
    ts = TradingStream(
        key_id, secret_key, URL(base_url), raw_data=True, websocket_params=dict(WEBSOCKET_PARAMS)
    )
    ts._trade_updates_handler = _unused
    return await handshake([ts._start_ws], ts.close, lambda: _opened(ts), timeout)


async def open_bars(
    key_id: str, secret_key: str, url: str, feed: str, symbols: Sequence[str], timeout: float
) -> OpenStream:
    """A market-data websocket (the library appends /v2/<feed> to `url`): connected, authenticated and
    subscribed to `symbols`' minute bars."""
    ds = DataStream(
        key_id, secret_key, URL(url), raw_data=True, feed=feed, websocket_params=dict(WEBSOCKET_PARAMS)
    )
    ds._handlers["bars"] = {s: _unused for s in symbols}
    return await handshake([ds._start_ws, ds._subscribe_all], ds.close, lambda: _opened(ds), timeout)


SDK_BINDING = SdkBinding(
    name="alpaca-trade-api",
    version=str(alpaca_trade_api.__version__),
    rest=SdkRest,
    open_trade_updates=open_trade_updates,
    open_bars=open_bars,
)
