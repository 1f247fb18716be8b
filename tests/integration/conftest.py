"""Fixtures: the simulator on loopback (frozen virtual clock), alone (`server`, for any client) or with
an AlpacaBroker pointed at it (`sim`, `broker`: once per SDK, see tests/sdk_choice.py)."""

from __future__ import annotations

import datetime as dt
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from sdk_choice import TEST_SDK

from breakout_bot.broker.alpaca.broker import AlpacaBroker
from breakout_bot.broker.throttle import RequestThrottle
from breakout_bot.sim import SimConfig, SimServer

SERVER_DAY = dt.date(2024, 3, 4)  # a Monday, regular session 09:30-16:00
KEY = "PKSIMTESTKEY0001"
SECRET = "simsecret-0123456789abcdef"


@dataclass
class Sim:
    server: Any
    url: str

    def requests_log(self) -> list[dict[str, Any]]:
        return list(requests.get(f"{self.url}/sim/requests", timeout=5).json())

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests_log() if r["method"] == method and r["path"] == path)

    def faults(self, **body: Any) -> dict[str, Any]:
        resp = requests.post(f"{self.url}/sim/faults", json=body, timeout=5)
        resp.raise_for_status()
        return dict(resp.json())

    def state(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.url}/sim/state", timeout=5).json())

    def advance(self, seconds: float) -> None:
        self.server.clock.advance(seconds)


@dataclass
class Events:
    """Collects stream callbacks on a thread-safe queue; `next` waits with a timeout."""

    q: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)

    def on_update(self, update: Any) -> None:
        self.q.put(("update", update))

    def on_status(self, status: str, detail: str) -> None:
        self.q.put(("status", (status, detail)))

    def on_bar(self, symbol: str, bar: Any) -> None:
        self.q.put(("bar", (symbol, bar)))

    def next(self, kind: str | None = None, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind or 'event'} within {timeout}s")
            try:
                k, v = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if kind is None or k == kind:
                return v

    def status(self, timeout: float = 10.0) -> tuple[str, str]:
        return tuple(self.next("status", timeout))  # type: ignore[return-value]

    def drain(self) -> list[tuple[str, Any]]:
        out = []
        while True:
            try:
                out.append(self.q.get_nowait())
            except queue.Empty:
                return out


@pytest.fixture
def sim() -> Iterator[Sim]:
    from breakout_bot.sim import SimConfig, SimServer

    server = SimServer(SimConfig(symbols=("AAPL",), speed=0.0, seed=7, key=KEY, secret=SECRET))
    url = server.start()
    assert url.startswith("http://127.0.0.1:")
    try:
        yield Sim(server, url)
    finally:
        server.stop()


def make_broker(
    sim: Sim, key: str = KEY, secret: str = SECRET, sdk: str = TEST_SDK, **kw: Any
) -> AlpacaBroker:
    """A broker on the simulator's virtual time: throttle and backoff sleep advance the sim clock."""
    clock = sim.server.clock
    throttle = kw.pop("throttle", None) or RequestThrottle(now=clock.timestamp, sleep=clock.advance)
    return AlpacaBroker(
        key,
        secret,
        base_url=sim.url,
        data_url=sim.url,
        data_stream_url=sim.url,
        throttle=throttle,
        clock=clock.timestamp,
        sleep=kw.pop("sleep", clock.advance),
        timeout=kw.pop("timeout", 5.0),
        sdk=sdk,
        **kw,
    )


@pytest.fixture
def broker(sim: Sim, sdk: str) -> Iterator[AlpacaBroker]:
    b = make_broker(sim, sdk=sdk)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimServer]:
    monkeypatch.setenv("APCA_RETRY_MAX", "0")
    srv = SimServer(SimConfig(symbols=("AAPL", "MSFT"), start=SERVER_DAY, speed=0, seed=7))
    url = srv.start()
    monkeypatch.setenv("APCA_API_BASE_URL", url)
    monkeypatch.setenv("APCA_API_DATA_URL", url)
    monkeypatch.setenv("APCA_API_STREAM_URL", url)
    monkeypatch.setenv("APCA_API_KEY_ID", "simkey")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "simsecret")
    try:
        yield srv
    finally:
        srv.stop()
