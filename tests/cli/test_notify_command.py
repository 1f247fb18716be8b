"""Notifications end to end (issue 21): `run --notify json://…` and `notify --test`, as subprocesses,
with a JSON webhook receiver on loopback (apprise's json:// scheme)."""

from __future__ import annotations

from pathlib import Path

import pytest
from notify_receiver import json_receiver

from .helpers import bot, error_line

pytest.importorskip("apprise")

DAY = "2024-03-04"
TOKEN = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def test_a_simulated_run_tells_its_owner_what_it_does(tmp_path: Path) -> None:
    with json_receiver() as rx:
        url = f"json://bot:{TOKEN}@127.0.0.1:{rx.port}/hook"
        proc = bot("run", "--symbol", "AAPL", "--start", DAY, "--notify", url, cwd=tmp_path, timeout=180)
        assert proc.returncode == 0, proc.stderr
        bodies = rx.bodies()
    titles = [b.split(": ", 1)[0] for b in bodies]
    assert any(
        b.startswith("AAPL: entry filled: AAPL ") and "stop" in b and "take-profit" in b for b in bodies
    )
    assert any(t.startswith("AAPL: exit (") for t in titles) or any("AAPL: exit (" in b for b in bodies), (
        bodies
    )
    assert any(b.startswith("breakout-bot: day 2024-03-04: ") and "realized P&L" in b for b in bodies), bodies
    assert bodies[-1].startswith("breakout-bot stopped: finished (exit 0)."), bodies
    assert all(TOKEN not in b for b in bodies)


def test_breakout_notify_in_the_environment_and_notify_test(tmp_path: Path) -> None:
    with json_receiver() as rx:
        proc = bot("notify", cwd=tmp_path, env={"BREAKOUT_NOTIFY": f"{rx.url('a')}, {rx.url('b')}"})
        assert proc.returncode == 0, proc.stderr
        assert len(rx.messages) == 2
        assert all(m["title"] == "breakout-bot test" for m in rx.messages)
        assert "sent a test message to json://…" in proc.stdout
        proc = bot("notify", "--test", rx.url("c"), cwd=tmp_path)
        assert proc.returncode == 0 and len(rx.messages) == 3


def test_notify_test_to_a_dead_receiver_says_so(tmp_path: Path) -> None:
    with json_receiver(status=500) as rx:
        proc = bot("notify", "--test", rx.url(TOKEN), cwd=tmp_path, timeout=60)
    assert proc.returncode == 1
    assert "could not send to json://…" in proc.stdout
    assert TOKEN not in proc.stdout + proc.stderr


def test_bad_notify_urls_are_one_line_without_their_token(tmp_path: Path) -> None:
    proc = bot("notify", "--test", f"nosuch://{TOKEN}", cwd=tmp_path)
    assert proc.returncode != 0
    line = error_line(proc)
    assert "nosuch://…" in line and TOKEN not in line
    proc = bot("run", "--symbol", "AAPL", "--notify", TOKEN, cwd=tmp_path)
    assert "expected apprise URLs" in error_line(proc) and TOKEN not in proc.stderr
