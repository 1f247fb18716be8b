"""More bad input: unwritable journal or log directory, a forbidden account, a holiday start."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from breakout_bot.cli.main import main
from breakout_bot.journal import Journal
from breakout_bot.sim import SimServer

from .test_bad_input import one_clear_line, run_cli


def test_journal_in_an_unusable_folder(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cwd / "afile").write_text("not a folder")
    code = main(["run", "--symbol", "AAPL", "--journal", "afile/past_trades.json", "--log-dir", "logs"])
    one_clear_line(code, capsys.readouterr().err, cwd, "journal", exit_code=5)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_read_only_journal_folder(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = cwd / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code = main(["run", "--symbol", "AAPL", "--journal", "ro/past_trades.json", "--log-dir", "logs"])
        one_clear_line(code, capsys.readouterr().err, cwd, "not writable", exit_code=5)
    finally:
        folder.chmod(0o700)


def test_ensure_writable_refuses_a_read_only_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "past_trades.json"
    path.write_text("[]")
    monkeypatch.setattr(os, "access", lambda p, mode: False)  # as a non-root user would see a 0444 file
    with pytest.raises(Exception, match="not writable"):
        Journal(path).ensure_writable()


def test_unwritable_log_folder(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cwd / "afile").write_text("not a folder")
    code = main(["run", "--symbol", "AAPL", "--journal", "past_trades.json", "--log-dir", "afile/logs"])
    one_clear_line(code, capsys.readouterr().err, cwd, "log", exit_code=2)


def test_forbidden_account(sim: SimServer, cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 403 is a refusal, not bad keys (only a trading 401 is): one line about the account, exit 1."""
    sim.control.set_forbidden(True)
    code, err = run_cli(capsys, "--symbol", "AAPL")
    one_clear_line(code, err, cwd, "refused", "account", exit_code=1)
    assert "API keys" not in err
    assert len(sim.exchange.requests) <= 5  # no retry storm on 403


def test_holiday_start_sleeps_to_the_next_session(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Christmas 2024 is a Wednesday: the market is closed; the bot says so and trades the 26th.
    code = main(
        [
            "run",
            "--symbol",
            "AAPL",
            "--start",
            "2024-12-25",
            "--journal",
            "past_trades.json",
            "--log-dir",
            "logs",
        ]
    )
    assert code == 0
    log = (cwd / "logs" / "breakout-bot.log").read_text()
    assert "market closed today" in log
    fills = json.loads((cwd / "past_trades.json").read_text())
    assert fills and all(f["timestamp"].startswith("2024-12-26") for f in fills)


def test_feed_sip_without_a_sip_plan_is_one_line_at_start_and_at_check(
    sim: SimServer, cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A free plan asked for SIP: the bot refuses to start with one line advising --feed iex (exit 2),
    before any order; `check` says the same on its data-feed line."""
    sim.control.set_free_plan(True)
    code, err = run_cli(capsys, "--symbol", "AAPL", "--feed", "sip")
    one_clear_line(code, err, cwd, "--feed iex", "SIP", exit_code=2)
    assert not any(r.method == "POST" for r in sim.exchange.requests)
    assert main(["check", "--symbol", "AAPL", "--feed", "sip"]) == 1
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.startswith("✘ data feed sip")]
    assert "--feed iex" in line
    assert main(["check", "--symbol", "AAPL", "--feed", "iex"]) in (0, 1)
    assert "✔ data feed iex" in capsys.readouterr().out
