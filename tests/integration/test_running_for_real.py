"""Issue 8 features end to end on the simulator: several symbols, daily loss limit, kill switch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sdk_choice import TEST_SDK

from breakout_bot.broker.alpaca.broker import AlpacaBroker
from breakout_bot.cli.main import main
from breakout_bot.live.halt import halt_path
from breakout_bot.sim import SimConfig, SimServer
from breakout_bot.sim.orders import parse_order_request

START = "2024-03-04"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "APCA_API_BASE_URL", "APCA_API_DATA_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _fills(path: Path) -> list[dict[str, str]]:
    return list(json.loads(path.read_text()))


def _run(*extra: str, start: str = START) -> int:
    return main(["run", "--start", start, "--journal", "past_trades.json", "--log-dir", "logs", *extra])


def test_two_symbols_trade_in_one_process(workdir: Path) -> None:
    assert _run("--symbol", "AAPL", "--symbol", "msft") == 0
    fills = _fills(workdir / "past_trades.json")
    symbols = {f["symbol"] for f in fills}
    assert symbols == {"AAPL", "MSFT"}
    for symbol in symbols:
        # each symbol's fills net to flat: every entry has its exit
        net = sum(
            Decimal(f["qty"]) * (1 if f["side"] == "buy" else -1) for f in fills if f["symbol"] == symbol
        )
        assert net == 0
    assert len({f["id"] for f in fills}) == len(fills)


def test_daily_loss_limit_stops_the_day(workdir: Path) -> None:
    # On this seeded synthetic day the first trade loses (found by running it; it is deterministic).
    day = "2024-03-05"
    assert _run("--symbol", "AAPL", "--journal", "unlimited.json", start=day) == 0
    unlimited = _fills(workdir / "unlimited.json")
    assert _run("--symbol", "AAPL", "--max-daily-loss", "1", start=day) == 0
    limited = _fills(workdir / "past_trades.json")
    assert 0 < len(limited) < len(unlimited)
    log = (workdir / "logs" / "breakout-bot.log").read_text()
    assert "daily loss limit 1.00 reached" in log


def test_risk_pct_sizes_trades(workdir: Path) -> None:
    assert _run("--symbol", "AAPL", "--risk-pct", "0.5", "--days", "1") == 0
    entries = [f for f in _fills(workdir / "past_trades.json") if f["leg"] == "entry"]
    assert entries
    assert all(Decimal(f["qty"]) != 100 for f in entries)  # sized from equity, not the fixed 100


@pytest.fixture
def sim() -> Iterator[SimServer]:
    server = SimServer(SimConfig(symbols=("AAPL",), speed=0.0, key="FLATKEY", secret="FLATSECRET"))
    server.start()
    server.clock.advance(15 * 60)  # 09:40: the market is open
    yield server
    server.stop()


def point_at(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's environment: the flatten fixture's keys, the simulator's URL."""
    for name, value in {
        "APCA_API_KEY_ID": "FLATKEY",
        "APCA_API_SECRET_KEY": "FLATSECRET",
        "APCA_API_BASE_URL": base,
        "APCA_API_DATA_URL": base,
    }.items():
        monkeypatch.setenv(name, value)


def test_flatten_command_cancels_closes_and_halts(
    sim: SimServer, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = sim.base_url
    broker = AlpacaBroker(
        "FLATKEY", "FLATSECRET", base_url=base, data_url=base, data_stream_url=base, sdk=TEST_SDK
    )
    body = {"symbol": "AAPL", "qty": "10", "side": "buy", "type": "market", "time_in_force": "day"}
    sim.exchange.submit(parse_order_request(body))
    sim.clock.advance(60)
    assert broker.get_position_qty("AAPL") == 10
    point_at(base, monkeypatch)
    code = main(["flatten", "--journal", "past_trades.json", "--log-dir", "logs", "--wait", "0"])
    sim.clock.advance(60)
    out = capsys.readouterr().out
    assert "kill switch engaged" in out
    assert code == 0  # the frozen clock leaves the close working: said, and not a failure
    assert "the closing order for 10 is working" in out
    assert broker.get_position_qty("AAPL") == 0
    assert halt_path(Path("past_trades.json")).exists()
    broker.close()


def test_flatten_command_waits_for_the_legs_cancel_before_closing(
    sim: SimServer, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bracketed position: the legs' cancel takes a moment (held_for_orders meanwhile); the kill switch
    retries the close instead of giving up with 'flatten incomplete'."""
    base = sim.base_url
    body = {
        "symbol": "AAPL",
        "qty": "10",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "order_class": "bracket",
        "take_profit": {"limit_price": "999"},
        "stop_loss": {"stop_price": "1"},
    }
    sim.exchange.submit(parse_order_request(body))
    sim.clock.advance(60)
    sim.control.set_cancel_latency(2000)
    sim.clock.set_speed(10)  # 2 s of virtual cancel latency = 0.2 s of wall time
    point_at(base, monkeypatch)
    code = main(["flatten", "--journal", "past_trades.json", "--log-dir", "logs"])
    assert code in (0, 1), capsys.readouterr().err
    held = [r for r in sim.exchange.requests if r.method == "DELETE" and r.path == "/v2/positions/AAPL"]
    assert held[0].status == 403 and held[-1].status == 200
    sim.clock.advance(60)
    assert "AAPL" not in sim.exchange.positions
