"""AlpacaMarketData: the MarketData protocol over Alpaca's market data v2 (REST bars and the bar stream)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from ...core.model import Bar
from ...errors import BrokerError
from .binding import SdkBinding
from .convert import bar_from_dict, rfc3339
from .rest import AlpacaRest
from .streams import OnStatus, StreamThread, start_bars

BARS_PAGE = 10_000  # Alpaca's maximum `limit` for bars
# Symbols per multi-symbol bars request: keeps the URL short (about 8 characters a symbol) whatever the
# universe; Alpaca documents no maximum, alpaca-py sends the whole list in one query string.
SYMBOLS_PER_REQUEST = 200


class AlpacaMarketData:
    """One-minute bars of a feed (iex or sip), polled over REST or pushed by the websocket."""

    def __init__(
        self,
        rest: AlpacaRest,
        binding: SdkBinding,
        data_url: str,
        stream_url: str | None,
        feed: str,
        key_id: str,
        secret_key: str,
    ) -> None:
        self.rest = rest
        self.binding = binding
        self.data_url = data_url
        self.stream_url = stream_url
        self.feed = feed
        self._key_id = key_id
        self._secret_key = secret_key
        self.streams: list[StreamThread] = []

    def __repr__(self) -> str:
        return f"AlpacaMarketData(data_url={self.data_url!r}, feed={self.feed!r})"

    def __getstate__(self) -> None:
        raise TypeError("AlpacaMarketData holds credentials and live connections: it cannot be pickled")

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far by this account's clients (trading and data)."""
        return self.rest.requests_sent

    def bar_records(
        self, symbol: str, start: datetime, end: datetime, feed: str | None = None
    ) -> list[dict[str, Any]]:
        """Raw v2 one-minute bars (dicts with t,o,h,l,c,v,n,vw) for start..end, all pages."""
        out: list[dict[str, Any]] = []
        for resp in self._pages(
            f"GET /v2/stocks/{symbol}/bars", f"/stocks/{symbol}/bars", self._bars_query(start, end, feed)
        ):
            out.extend(resp.get("bars") or [])
        return out

    def multi_bar_records(
        self, symbols: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, list[dict[str, Any]]]:
        """Raw v2 one-minute bars of several symbols from GET /v2/stocks/bars?symbols=A,B (all pages):
        one request per page however many symbols. The page limit counts bars across all symbols, a page
        runs symbol by symbol ({"bars": {"A": [...], "B": [...]}}), and a symbol may continue on the next
        page (market-data-api.json, StockBars `limit`: "applies to the total number of data points, not
        per symbol"; alpaca-py's get_stock_bars and alpaca-trade-api's get_bars with a list page the same
        way)."""
        out: dict[str, list[dict[str, Any]]] = {s.upper(): [] for s in symbols}
        wanted = sorted(out)
        for i in range(0, len(wanted), SYMBOLS_PER_REQUEST):
            chunk = wanted[i : i + SYMBOLS_PER_REQUEST]
            query = {**self._bars_query(start, end, None), "symbols": ",".join(chunk)}
            for resp in self._pages("GET /v2/stocks/bars", "/stocks/bars", query):
                for symbol, rows in (resp.get("bars") or {}).items():
                    out.setdefault(symbol, []).extend(rows or [])
        return out

    def _bars_query(self, start: datetime, end: datetime, feed: str | None) -> dict[str, Any]:
        return {
            "timeframe": "1Min",
            "start": rfc3339(start),
            "end": rfc3339(end),
            "adjustment": "raw",
            "limit": BARS_PAGE,
            "feed": feed or self.feed,
        }

    def _pages(self, what: str, path: str, base: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every page of a bars read, following next_page_token (a repeated token is an error, not a loop)."""
        token: str | None = None
        tokens: set[str] = set()
        while True:
            params = dict(base)
            if token:
                params["page_token"] = token
            resp = self.rest.data_get(what, path, params) or {}
            yield resp
            token = resp.get("next_page_token")
            if not token:
                return
            if token in tokens:
                raise BrokerError(f"{what}: pagination repeats a page token")
            tokens.add(token)

    def get_bars(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        return _closed_in(self.bar_records(symbol, start, end), start, end)

    def get_bars_multi(self, symbols: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        records = self.multi_bar_records(symbols, start, end)
        return {s: _closed_in(records.get(s.upper(), []), start, end) for s in symbols}

    def get_latest_bar(self, symbol: str) -> Bar | None:
        """The latest one-minute bar of the feed (None when the feed has none)."""
        resp = self.rest.data_get(
            f"GET /v2/stocks/{symbol}/bars/latest", f"/stocks/{symbol}/bars/latest", {"feed": self.feed}
        )
        bar = (resp or {}).get("bar")
        return bar_from_dict(bar) if bar else None

    def stream_bars(
        self, symbols: Sequence[str], on_bar: Callable[[str, Bar], None], on_status: OnStatus
    ) -> StreamThread:
        """Minute bars of `symbols` from the market-data websocket (msgpack), on a daemon thread."""
        if not self.stream_url:
            raise BrokerError("no market data stream URL configured")
        handle = start_bars(
            self.binding,
            self._key_id,
            self._secret_key,
            self.stream_url,
            self.feed,
            [s.upper() for s in symbols],
            self.rest.timeout,
            on_bar,
            on_status,
            self.rest.redact,
        )
        self.streams.append(handle)
        return handle

    def close(self) -> None:
        for s in list(self.streams):
            s.stop()
        self.streams.clear()


def _closed_in(records: list[dict[str, Any]], start: datetime, end: datetime) -> list[Bar]:
    bars = [b for b in map(bar_from_dict, records) if start <= b.t < end]
    bars.sort(key=lambda b: b.t)
    return bars
