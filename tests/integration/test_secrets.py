"""The API keys never leave the process: not in the log file, the terminal, the journal, error lines,
or the repr/str of Settings and the broker; and a live URL without --live is refused before any traffic.

A full simulated session runs in-process (`cli.main(["run", ..., "--sim-clock"])`) against a separately
started simulator that accepts only our DISTINCTIVE keys, so any leak is found by a plain substring search.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from breakout_bot.broker.alpaca.broker import AlpacaBroker
from breakout_bot.cli import main as cli
from breakout_bot.config.settings import Settings
from breakout_bot.sim import SimConfig, SimServer

KEY = "PKSECRETKEYID1234567"
SECRET = "SuPeRsEcReT-9f8e7d6c5b4a"
WRONG_SECRET = "WrOnGsEcReT-0a1b2c3d4e5f"


@pytest.fixture
def sim() -> Iterator[SimServer]:
    server = SimServer(
        SimConfig(symbols=("AAPL",), start=dt.date(2024, 3, 4), speed=0, seed=11, key=KEY, secret=SECRET)
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, base_url: str, key: str, secret: str) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout
    for name in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "APCA_API_BASE_URL", "APCA_API_DATA_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APCA_API_KEY_ID", key)
    monkeypatch.setenv("APCA_API_SECRET_KEY", secret)
    monkeypatch.setenv("APCA_API_BASE_URL", base_url)
    monkeypatch.setenv("APCA_API_DATA_URL", base_url)
    monkeypatch.setenv("APCA_API_STREAM_URL", base_url)


def _everything_written(tmp_path: Path) -> str:
    """Every file the run left behind (logs, journal, lock files), as text."""
    return "\n".join(
        p.read_bytes().decode("utf-8", errors="replace") for p in sorted(tmp_path.rglob("*")) if p.is_file()
    )


def _assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
        assert secret.lower() not in text.lower()


@pytest.mark.integration
@pytest.mark.slow
def test_full_session_never_writes_the_keys(
    sim: SimServer,
    sdk: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _env(monkeypatch, tmp_path, sim.base_url, KEY, SECRET)
    # Error paths log the failing request: make some happen (5xx on orders, a 429, a stream drop).
    sim.control.inject_http_fault(503, count=2, paths="/v2/orders")
    sim.control.inject_http_fault(429, count=2, paths="/v2/account")
    code = cli.main(
        ["run", "--symbol", "AAPL", "--sim-clock", "--days", "1", "--journal", "past_trades.json",
         "--log-dir", "logs", "--verbose", "--sdk", sdk]
    )  # fmt: skip
    out, err = capfd.readouterr()
    assert code == 0, err
    journal = (tmp_path / "past_trades.json").read_text()
    assert '"symbol": "AAPL"' in journal  # the session traded: the check below is not vacuous
    log_text = (tmp_path / "logs" / "breakout-bot.log").read_text()
    assert "journal:" in log_text
    _assert_clean(out + err + _everything_written(tmp_path), KEY, SECRET)


@pytest.mark.integration
def test_wrong_secret_error_line_names_no_key(
    sim: SimServer,
    sdk: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _env(monkeypatch, tmp_path, sim.base_url, KEY, WRONG_SECRET)
    code = cli.main(
        ["run", "--symbol", "AAPL", "--sim-clock", "--days", "1", "--log-dir", "logs", "-v", "--sdk", sdk]
    )
    out, err = capfd.readouterr()
    assert code == 3, err
    assert err.startswith("error: ") and "APCA_API_SECRET_KEY" in err  # one clear line: what to check
    _assert_clean(out + err + _everything_written(tmp_path), KEY, WRONG_SECRET, SECRET)


def test_repr_and_str_hide_the_keys(sdk: str) -> None:
    settings = Settings(key_id=KEY, secret_key=SECRET, symbols=("AAPL",))
    broker = AlpacaBroker(KEY, SECRET, base_url="http://127.0.0.1:9", data_url="http://127.0.0.1:9", sdk=sdk)
    try:
        texts = [repr(settings), str(settings), repr(broker), str(broker), f"{settings}", f"{broker!r}"]
        texts += [repr(broker.rest), repr(broker.rest.sdk), repr(broker.market_data)]
        texts += [repr(settings.redacted()), broker.redact(f"auth {KEY}:{SECRET}")]
        for text in texts:
            _assert_clean(text, KEY, SECRET)
    finally:
        broker.close()


def test_live_url_without_live_flag_is_refused_before_any_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, tmp_path, "https://api.alpaca.markets", KEY, SECRET)
    monkeypatch.delenv("APCA_API_DATA_URL")
    monkeypatch.delenv("APCA_API_STREAM_URL")
    attempts: list[object] = []

    def no_network(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise AssertionError("network connection attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    code = cli.main(["run", "--symbol", "AAPL", "--log-dir", "logs"])
    out, err = capfd.readouterr()
    assert code == 2
    assert attempts == []
    lines = [line for line in err.splitlines() if line.strip()]
    assert any("refusing to trade live without --live" in line for line in lines), err
    assert all(line.startswith("error: ") for line in lines), err
    _assert_clean(out + err + _everything_written(tmp_path), KEY, SECRET)
