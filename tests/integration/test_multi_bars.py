"""Bars of many symbols in one request: GET /v2/stocks/bars?symbols=... over both SDKs, across pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from breakout_bot.broker.alpaca import marketdata as alpaca_marketdata
from breakout_bot.broker.alpaca.broker import AlpacaBroker

from .conftest import KEY, SECRET, Sim, make_broker

SYMBOLS = ("AAPL", "MSFT", "SPY")


@pytest.fixture
def sim3() -> Iterator[Sim]:
    from breakout_bot.sim import SimConfig, SimServer

    server = SimServer(SimConfig(symbols=SYMBOLS, speed=0.0, seed=7, key=KEY, secret=SECRET))
    url = server.start()
    try:
        yield Sim(server, url)
    finally:
        server.stop()


def test_multi_symbol_bars_match_single_reads_across_pages(
    sim3: Sim, sdk: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker3 = make_broker(sim3, sdk=sdk)
    try:
        multi_symbol_reads(sim3, broker3, monkeypatch)
    finally:
        broker3.close()


def multi_symbol_reads(sim3: Sim, broker3: AlpacaBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    sim3.advance(3600)  # 10:25 New York: an hour of bars
    now = sim3.server.clock.now()
    start = now - timedelta(minutes=40)
    data = broker3.market_data
    single = {s: data.get_bars(s, start, now) for s in SYMBOLS}
    assert all(len(bars) >= 30 for bars in single.values())
    before = sim3.count("GET", "/v2/stocks/bars")
    assert data.get_bars_multi(list(SYMBOLS), start, now) == single
    assert sim3.count("GET", "/v2/stocks/bars") - before == 1  # one request for all three
    # A page limit counts bars across symbols: a symbol's bars continue on the next page.
    monkeypatch.setattr(alpaca_marketdata, "BARS_PAGE", 7)
    before = sim3.count("GET", "/v2/stocks/bars")
    assert data.get_bars_multi(list(SYMBOLS), start, now) == single
    total = sum(len(b) for b in single.values())
    assert sim3.count("GET", "/v2/stocks/bars") - before == -(-total // 7)
    # Chunks of symbols: each chunk its own request (the URL stays short with any universe).
    monkeypatch.setattr(alpaca_marketdata, "BARS_PAGE", 10_000)
    monkeypatch.setattr(alpaca_marketdata, "SYMBOLS_PER_REQUEST", 2)
    before = sim3.count("GET", "/v2/stocks/bars")
    assert data.get_bars_multi(list(SYMBOLS), start, now) == single
    assert sim3.count("GET", "/v2/stocks/bars") - before == 2
