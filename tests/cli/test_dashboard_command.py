"""`run --dashboard` and `breakout-bot dashboard` as a user meets them: subprocesses, no keys."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from datetime import datetime
from pathlib import Path

from breakout_bot.core.model import NEW_YORK
from breakout_bot.journal import FillRecord, Journal

from .helpers import CONSOLE, bot, clean_env, error_line

TOKEN = "dash-token-0123456789abcdef"


def test_off_loopback_without_a_token_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    proc = bot("run", "--symbol", "AAPL", "--dashboard", "0.0.0.0:8050", cwd=tmp_path)
    assert proc.returncode == 2
    assert error_line(proc) == (
        "error: --dashboard 0.0.0.0: a dashboard on a non-loopback interface needs a token "
        "(--dashboard-token or BREAKOUT_DASHBOARD_TOKEN)"
    )
    assert not (tmp_path / "simulated").exists()  # refused before the run started
    bad = bot("run", "--symbol", "AAPL", "--dashboard", "port", cwd=tmp_path)
    assert bad.returncode == 2 and "expected [HOST:]PORT" in error_line(bad)


def test_a_run_with_a_dashboard_never_shows_its_token(tmp_path: Path) -> None:
    proc = bot(
        "run",
        "--symbol",
        "AAPL",
        "--dashboard",
        "127.0.0.1:0",
        cwd=tmp_path,
        env={"BREAKOUT_DASHBOARD_TOKEN": TOKEN},
    )
    assert proc.returncode == 0, proc.stderr
    assert "dashboard: http://127.0.0.1:" in proc.stdout and "finished: " in proc.stdout
    logs = "".join(p.read_text() for p in (tmp_path / "logs").rglob("*.log"))
    assert "run " in logs  # the log was written (its start line)
    assert TOKEN not in proc.stdout + proc.stderr + logs


def test_the_dashboard_command_serves_past_days(tmp_path: Path) -> None:
    path = tmp_path / "past_trades.json"
    journal = Journal(path)
    journal.load()
    when = datetime(2024, 3, 4, 10, 5, tzinfo=NEW_YORK).isoformat()
    journal.append(FillRecord("x1", "o1", "c1", "SPY", "buy", "10", "500", when, leg="entry"))
    journal.flush()
    journal.close()
    proc = subprocess.Popen(
        [str(CONSOLE), "dashboard", "--journal", str(path), "--port", "0", "--cache-dir", str(tmp_path)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(f"dashboard of {path}: http://127.0.0.1:"), line
        url = line.split()[3]
        with urllib.request.urlopen(url + "api/days", timeout=10) as r:
            assert json.loads(r.read()) == ["2024-03-04"]
        with urllib.request.urlopen(url + "api/day/2024-03-04", timeout=10) as r:
            day = json.loads(r.read())
        assert day["symbols"][0]["symbol"] == "SPY" and day["symbols"][0]["bars_cached"] is False
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_the_dashboard_command_needs_a_journal(tmp_path: Path) -> None:
    proc = bot("dashboard", "--journal", "nowhere.json", cwd=tmp_path)
    assert proc.returncode == 2
    assert error_line(proc) == "error: dashboard: no journal at nowhere.json (give --journal FILE)"
    (tmp_path / "empty.json").write_text("[]")
    off = bot("dashboard", "--journal", "empty.json", "--host", "0.0.0.0", cwd=tmp_path)
    assert off.returncode == 2 and "non-loopback interface needs a token" in error_line(off)
