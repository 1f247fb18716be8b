"""`breakout-bot schedule`: units that systemd accepts, a cron line that runs one session."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from breakout_bot.cli.main import main


def test_systemd_units_written_and_verified(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "units"
    code = main(
        ["schedule", "--systemd", "--symbol", "aapl", "--workdir", str(tmp_path), "--output-dir", str(out)]
    )
    assert code == 0
    service = (out / "breakout-bot.service").read_text()
    timer = (out / "breakout-bot.timer").read_text()
    assert "run --symbols AAPL --once" in service
    assert f"WorkingDirectory={tmp_path.resolve()}" in service
    assert "Restart=on-failure" in service
    assert "OnCalendar=Mon..Fri *-*-* 09:00:00 America/New_York" in timer
    verifier = shutil.which("systemd-analyze")
    if verifier is None:
        pytest.skip("systemd-analyze not installed: units checked textually only")
    result = subprocess.run(
        [verifier, "verify", str(out / "breakout-bot.service"), str(out / "breakout-bot.timer")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_cron_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert (
        main(["schedule", "--cron", "--symbol", "AAPL", "--symbol", "MSFT", "--workdir", str(tmp_path)]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "CRON_TZ=America/New_York"
    assert lines[1].startswith("0 9 * * 1-5 cd ")
    assert "run --symbols AAPL,MSFT --once" in lines[1]


def test_schedule_needs_a_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "--symbol", "AAPL"]) == 2
    assert "one of the arguments --systemd --cron is required" in capsys.readouterr().err
