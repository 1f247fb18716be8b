"""`breakout-bot flatten` (the kill switch) as a subprocess against the simulator on loopback."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from breakout_bot.core.model import NEW_YORK
from breakout_bot.live.halt import halt_on
from breakout_bot.sim import SimConfig, SimServer
from breakout_bot.sim.orders import parse_order_request

from .helpers import bot

KEY, SECRET = "PKFLATTENTEST001", "flatten-secret-0123456789"


def _sim(speed: float) -> SimServer:
    server = SimServer(
        SimConfig(symbols=("AAPL",), start=dt.date(2024, 3, 4), speed=speed, key=KEY, secret=SECRET)
    )
    server.start()
    server.clock.advance(15 * 60)  # 09:40: the market is open
    body = {"symbol": "AAPL", "qty": "10", "side": "buy", "type": "market", "time_in_force": "day"}
    server.exchange.submit(parse_order_request(body))
    server.clock.advance(60)
    assert server.exchange.position("AAPL").qty == 10
    return server


@pytest.fixture
def flowing() -> Iterator[SimServer]:
    server = _sim(60.0)  # a virtual minute per wall second: the close fills within the wait
    yield server
    server.stop()


@pytest.fixture
def frozen() -> Iterator[SimServer]:
    server = _sim(0.0)  # nothing trades: the close stays working
    yield server
    server.stop()


def _env(server: SimServer) -> dict[str, str]:
    return {
        "APCA_API_KEY_ID": KEY,
        "APCA_API_SECRET_KEY": SECRET,
        "APCA_API_BASE_URL": server.base_url,
        "APCA_API_DATA_URL": server.base_url,
    }


def test_flatten_waits_for_the_close_and_says_flat(flowing: SimServer, tmp_path: Path) -> None:
    """It printed "position closed", then "still open …: {'AAPL': Decimal('10')}" and exited 1, though
    the position was flat half a second later."""
    proc = bot("flatten", "--wait", "20", cwd=tmp_path, env=_env(flowing), timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert (
        lines[0].startswith("kill switch engaged for ")
        and "`breakout-bot flatten --clear` lifts it" in lines[0]
    )
    assert "AAPL: orders canceled; closing long 10: market sell sent" in proc.stdout
    assert lines[-1] == "flat: every position is closed"
    assert "Decimal(" not in proc.stdout and "{" not in proc.stdout
    assert "AAPL" not in flowing.exchange.positions
    today = dt.datetime.now(NEW_YORK).date()
    halt = halt_on(tmp_path / "breakout-bot.halt", today)
    assert halt is not None and halt.mode == "simulator"  # a loopback broker is a simulator


def test_a_working_close_is_said_in_words_and_exits_0(frozen: SimServer, tmp_path: Path) -> None:
    proc = bot("flatten", "--wait", "1", cwd=tmp_path, env=_env(frozen), timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        "AAPL: still long 10 after 1 s; the closing order for 10 is working and fills at the next trade"
        in proc.stdout
    )
    assert proc.stdout.splitlines()[-1] == "the closes are working; the kill switch stays engaged for today"


def test_flatten_clear_lifts_the_switch(frozen: SimServer, tmp_path: Path) -> None:
    assert bot("flatten", "--wait", "0", cwd=tmp_path, env=_env(frozen), timeout=90).returncode == 0
    assert (tmp_path / "breakout-bot.halt").exists()
    cleared = bot("flatten", "--clear", cwd=tmp_path, timeout=60)  # no keys needed, nothing sent
    assert cleared.returncode == 0
    assert cleared.stdout.startswith("kill switch lifted (breakout-bot.halt): new entries are allowed again")
    assert not (tmp_path / "breakout-bot.halt").exists()
    again = bot("flatten", "--clear", cwd=tmp_path, timeout=60)
    assert again.returncode == 0 and "was not engaged" in again.stdout
