"""`breakout-bot sim` standalone: a clean stop, and what it exposes beyond loopback."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import requests

from breakout_bot.sim import SimConfig, SimServer

from .helpers import CONSOLE, bot, clean_env, error_line


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_it_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C and SIGTERM printed `Task was destroyed but it is pending!`."""
    proc = subprocess.Popen(
        [str(CONSOLE), "sim", "--speed", "60"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("listening on http://127.0.0.1:")
        requests.get(first.split()[-1] + "/sim/state", timeout=10).raise_for_status()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "Task was destroyed" not in err and "Traceback" not in err
    assert "New York time" in err  # the start line: the market's time, not UTC


def test_a_non_loopback_host_needs_its_own_key(tmp_path: Path) -> None:
    """`--host 0.0.0.0` silently exposed the unauthenticated /sim/* control API. Refused before it binds."""
    proc = bot("sim", "--host", "0.0.0.0", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "--host 0.0.0.0 exposes the simulator" in error_line(proc) and "--key" in error_line(proc)
    assert proc.stdout == ""  # never listened


def test_off_loopback_the_control_api_wants_the_key() -> None:
    # The rule as it applies off loopback, exercised on loopback (tests never bind anything else).
    server = SimServer(SimConfig(speed=0, key="K1", secret="S1", control_needs_key=True))
    url = server.start()
    try:
        assert requests.get(f"{url}/sim/state", timeout=10).status_code == 401
        assert requests.post(f"{url}/sim/clock", json={"advance_seconds": 60}, timeout=10).status_code == 401
        headers = {"APCA-API-KEY-ID": "K1", "APCA-API-SECRET-KEY": "S1"}
        assert requests.get(f"{url}/sim/state", headers=headers, timeout=10).status_code == 200
    finally:
        server.stop()
    assert SimConfig(host="0.0.0.0").guards_control and not SimConfig(host="127.0.0.9").guards_control
    assert not SimConfig().guards_control and SimConfig(host="::").guards_control
