"""Fixtures shared by the bot's bad-input tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from breakout_bot.sim import SimConfig, SimServer

from .harness import DAY

KEY, SECRET = "PKBADINPUTTEST01", "bad-input-secret-0123456789"
ENV = (
    "APCA_API_KEY_ID",
    "APCA_API_SECRET_KEY",
    "APCA_API_BASE_URL",
    "APCA_API_DATA_URL",
    "APCA_API_STREAM_URL",
)


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def sim(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimServer]:
    """A standalone simulator (AAPL configured) and the bot's environment pointing at it with good keys."""
    server = SimServer(SimConfig(symbols=("AAPL",), start=DAY, speed=0.0, key=KEY, secret=SECRET))
    url = server.start()
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    monkeypatch.setenv("APCA_API_BASE_URL", url)
    monkeypatch.setenv("APCA_API_DATA_URL", url)
    yield server
    server.stop()
