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
