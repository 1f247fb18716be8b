"""`breakout-bot verify` as a user runs it: a subprocess against `breakout-bot sim` (another subprocess) on
loopback. It passes against the simulator in and out of market hours, cleans up after Ctrl-C, and
refuses a live URL before sending anything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("breakout-bot"))
KEY, SECRET = "PKVERIFYTEST0001", "verify-secret-0123456789"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:  # loopback only
        return json.loads(resp.read())


def _get_api(url: str) -> Any:
    req = urllib.request.Request(url, headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET})
    with urllib.request.urlopen(req, timeout=10) as resp:  # loopback only
        return json.loads(resp.read())


def start_sim(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    out = tmp_path / "sim.out"
    proc = subprocess.Popen(
        [
            CLI,
            "sim",
            "--key",
            KEY,
            "--secret",
            SECRET,
            "--start",
            "2024-03-04",
            "--data-auth-timeout",
            "1",
            *flags,
        ],
        stdout=out.open("wb"),
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = out.read_text()
        if text.startswith("listening on http://127.0.0.1:") and "\n" in text:
            return proc, text.split("\n", 1)[0].split()[-1]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the simulator did not start")


@pytest.fixture
def sim_factory(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def make(*flags: str) -> str:
        proc, url = start_sim(tmp_path, *flags)
        procs.append(proc)
        return url

    yield make
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APCA_")}
    env.update(
        APCA_API_KEY_ID=KEY,
        APCA_API_SECRET_KEY=SECRET,
        APCA_API_BASE_URL=url,
        APCA_API_DATA_URL=url,
        APCA_API_STREAM_URL=url,
    )
    return env


def verify(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    assert url.startswith("http://127.0.0.1:")  # never anything but the simulator on loopback
    return subprocess.run(
        [
            CLI,
            "verify",
            "--symbol",
            "AAPL",
            "--report",
            str(tmp_path / "report.json"),
            "--timeout",
            "20",
            *extra,
        ],
        env=env_for(url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def nothing_left(url: str) -> None:
    orders = _get_api(f"{url}/v2/orders?status=all&nested=true&limit=500")
    alive = [
        o
        for o in orders
        for x in [o, *(o.get("legs") or [])]
        if x["status"] not in ("filled", "canceled", "expired", "rejected", "replaced")
    ]
    assert alive == []
    assert _get_api(f"{url}/v2/positions") == []


def test_verify_passes_against_the_simulator_in_market_hours(tmp_path: Path, sim_factory: Any) -> None:
    url = sim_factory("--speed", "20", "--start-time", "10:00")
    proc = verify(tmp_path, url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [x for x in proc.stdout.splitlines() if x[:1] in "✔✘"]
    assert len(lines) >= 20 and all(x.startswith("✔") for x in lines), proc.stdout
    assert all(" → observed " in x for x in lines)  # expected → observed, one line each
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["market_open"] is True and len(report["checks"]) == len(lines)
    names = " ".join(c["name"] for c in report["checks"])
    for assumption in ("held", "cancels the stop-loss too", "execution_id", "marketable limit", "406", "401"):
        assert assumption in names
    assert SECRET not in (tmp_path / "report.json").read_text() and SECRET not in proc.stdout
    time.sleep(0.2)
    nothing_left(url)


def test_outside_market_hours_verify_checks_what_needs_no_fill(tmp_path: Path, sim_factory: Any) -> None:
    url = sim_factory("--speed", "10", "--start-time", "08:00")
    proc = verify(tmp_path, url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "market is closed" in proc.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["market_open"] is False
    names = " ".join(c["name"] for c in report["checks"])
    assert "base_price" in names and "sub-penny" in names and "held" not in names
    time.sleep(0.2)
    nothing_left(url)


def test_ctrl_c_in_the_middle_cleans_up(tmp_path: Path, sim_factory: Any) -> None:
    url = sim_factory("--speed", "5", "--start-time", "10:00")
    assert url.startswith("http://127.0.0.1:")
    proc = subprocess.Popen(
        [CLI, "verify", "--symbol", "AAPL", "--report", str(tmp_path / "report.json"), "--timeout", "30"],
        env=env_for(url),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _get_api(f"{url}/v2/positions"):
        time.sleep(0.05)  # until verify holds its share (the first bracket filled)
    assert _get_api(f"{url}/v2/positions"), "verify never bought its share"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted: cleaning up" in out and "cleanup:" in out
    assert json.loads((tmp_path / "report.json").read_text())["interrupted"] is True
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _get_api(f"{url}/v2/positions"):
        time.sleep(0.1)  # the sale fills at the next trade
    nothing_left(url)


@pytest.mark.parametrize("flags", [[], ["--live"]])
def test_a_live_url_is_refused_before_anything_is_sent(tmp_path: Path, flags: list[str]) -> None:
    env = env_for("https://api.alpaca.markets")
    proc = subprocess.run(
        [CLI, "verify", "--symbol", "AAPL", "--report", str(tmp_path / "r.json"), *flags],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and ("live" in errors[0].lower()), proc.stderr
    assert not (tmp_path / "r.json").exists()  # it stopped before any request
