"""`breakout-bot check` against the simulator on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from breakout_bot.cli.main import main

KEY = "PKCHECKTEST00001"
SECRET = "check-secret-0123456789"


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    from breakout_bot.sim import SimConfig, SimServer

    server = SimServer(SimConfig(symbols=("AAPL",), speed=0.0, seed=7, key=KEY, secret=SECRET))
    url = server.start()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APCA_API_BASE_URL", url)
    monkeypatch.setenv("APCA_API_DATA_URL", url)
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    server.url = url
    try:
        yield server
    finally:
        server.stop()


def lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln[:1] in ("✔", "✘")]


def test_all_good(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--symbol", "AAPL"]) == 0
    out = capsys.readouterr().out
    got = lines(out)
    assert [ln.split(":")[0] for ln in got] == [
        "✔ keys",
        "✔ account",
        "✔ market clock",
        "✔ asset AAPL",
        "✔ data feed iex",
    ]
    assert "buying power $" in out and "all checks passed" in out
    assert KEY not in out and SECRET not in out


def test_names_the_sdk(sim: Any, sdk: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--symbol", "AAPL", "--sdk", sdk]) == 0
    keys = lines(capsys.readouterr().out)[0]
    assert keys.startswith("✔ keys:") and f"SDK {sdk} " in keys
    agents = {r["agent"] for r in requests.get(f"{sim.url}/sim/requests", timeout=5).json()}
    assert len(agents) == 1 and agents.pop().startswith(
        "APCA-PY/" if sdk == "alpaca-py" else "APCA-TRADE-SDK-PY/"
    )


def test_not_shortable_fails(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--symbol", "NOSHORT"]) == 1
    out = capsys.readouterr().out
    assert "✘ asset NOSHORT: active, tradable, NOT shortable" in out
    assert "1 check(s) failed" in out


def test_unknown_symbol(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--symbol", "ZZZZ"]) == 1
    assert "✘ asset ZZZZ: unknown at Alpaca" in capsys.readouterr().out


def test_bad_keys_one_request(
    sim: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APCA_API_SECRET_KEY", "definitely-wrong-secret")
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert lines(out)[0].startswith("✘ keys:") and "refused" in out
    assert "definitely-wrong-secret" not in out
    assert len(requests.get(f"{sim.url}/sim/requests", timeout=5).json()) == 1  # no retry storm


def test_no_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("✘ keys: no Alpaca API keys configured")
    assert "simulator" in out


def test_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APCA_API_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("APCA_API_DATA_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    assert main(["check"]) == 1
    assert "✘ keys: cannot reach" in capsys.readouterr().out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed when the block ends: nothing listens there


def test_check_reads_live_keys_without_live_and_says_where_it_failed(tmp_path: Path) -> None:
    """`check` with a live URL said "refusing to trade live"; retry lines came before the message and a
    failure read "ConnectionError". The proxy on a closed loopback port keeps every packet here."""
    from .helpers import bot

    proxy = f"http://127.0.0.1:{_closed_port()}"
    env = {
        "APCA_API_KEY_ID": KEY,
        "APCA_API_SECRET_KEY": SECRET,
        "APCA_API_BASE_URL": "https://api.alpaca.markets",
        "HTTPS_PROXY": proxy,
        "HTTP_PROXY": proxy,
        "NO_PROXY": "",
    }
    proc = bot("check", cwd=tmp_path, env=env, timeout=90)
    assert proc.returncode == 1
    assert "refusing" not in proc.stdout + proc.stderr and proc.stderr == ""
    assert proc.stdout.splitlines() == [
        "✘ keys: cannot reach https://api.alpaca.markets: GET /v2/account: the HTTP proxy for "
        "api.alpaca.markets failed (HTTPS_PROXY / HTTP_PROXY) (gave up after 2 attempts)",
        "1 check(s) failed",
    ]
    assert "retry 1/1" in (tmp_path / "logs" / "breakout-bot.log").read_text()  # the log keeps them


def test_check_says_connection_refused_and_where(tmp_path: Path) -> None:
    from .helpers import bot

    port = _closed_port()
    env = {
        "APCA_API_KEY_ID": KEY,
        "APCA_API_SECRET_KEY": SECRET,
        "APCA_API_BASE_URL": f"http://127.0.0.1:{port}",
    }
    proc = bot("check", cwd=tmp_path, env=env, timeout=90)
    assert proc.returncode == 1 and proc.stderr == ""
    assert f"GET /v2/account: connection refused by 127.0.0.1:{port} (nothing listening there)" in proc.stdout


def test_check_names_a_tls_failure(sim: Any, tmp_path: Path) -> None:
    """https:// to a plain-HTTP server: the handshake fails, and the line says so."""
    from .helpers import bot

    env = {
        "APCA_API_KEY_ID": KEY,
        "APCA_API_SECRET_KEY": SECRET,
        "APCA_API_BASE_URL": sim.url.replace("http:", "https:"),
    }
    proc = bot("check", cwd=tmp_path, env=env, timeout=90)
    assert proc.returncode == 1
    assert "TLS handshake with 127.0.0.1:" in proc.stdout and "failed" in proc.stdout
