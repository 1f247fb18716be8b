"""`breakout-bot run` as a new user meets it (issue 17): subprocesses in a scratch folder, no keys."""

from __future__ import annotations

import json
import os
import re
import stat
from collections import Counter
from pathlib import Path

import pytest
from shared_data import SAMPLE_SPY

from breakout_bot.journal import Journal
from breakout_bot.live.halt import engage

from .helpers import bot, error_line

DAY = "2024-03-04"
SIM_JOURNAL = Path("simulated") / "past_trades.json"


def records(cwd: Path, journal: Path = SIM_JOURNAL) -> list[dict[str, str]]:
    path = cwd / journal
    return list(json.loads(path.read_text())) if path.exists() else []


def summary(stdout: str) -> tuple[int, str]:
    """(fills recorded, the realized P&L text) of the run's last line but one."""
    match = re.search(r"finished: (\d+) fills recorded in \S+; realized P&L (\S+) ([+-][\d,.]+)", stdout)
    assert match, stdout
    return int(match.group(1)), match.group(3)


def test_simulated_runs_keep_every_fill_and_stay_apart_from_real_trading(tmp_path: Path) -> None:
    """Every simulator issued the same ids, so the journal (keyed by id) dropped the second run's
    fills ("0 new fills recorded"), and `trades` merged two runs into a phantom `short 200`."""
    first = bot("run", "--symbol", "AAPL", "--start", DAY, cwd=tmp_path)
    second = bot("run", "--symbol", "MSFT", "--start", DAY, cwd=tmp_path)
    third = bot("run", "--symbol", "AAPL", "--start", DAY, cwd=tmp_path)  # the quick start, run twice
    counts = [summary(p.stdout)[0] for p in (first, second, third)]
    assert all(p.returncode == 0 for p in (first, second, third))
    assert counts[0] > 0 and counts[1] > 0 and counts[2] == counts[0]
    rows = records(tmp_path)
    assert len(rows) == sum(counts)
    assert len({r["id"] for r in rows}) == len(rows) and len({r["order_id"] for r in rows}) > 3
    assert {r["mode"] for r in rows} == {"simulator"}
    by_run = Counter((r["run"], r["account"]) for r in rows)
    assert sorted(by_run.values()) == sorted(counts) and len({acct for _, acct in by_run}) == 3
    assert not (tmp_path / "past_trades.json").exists()  # the real journal is untouched
    assert "simulated/past_trades.json" in first.stdout and "trades --simulated" in first.stdout
    log_text = (tmp_path / "logs" / "simulated" / "breakout-bot.log").read_text()
    # each run's start line carries what its records' run id needs to be lined up with a backtest
    for run_id, account in by_run:
        start = re.search(
            rf"run {re.escape(run_id)} started: mode simulator, account {account}, .*params (\{{.*\}})",
            log_text,
        )
        assert start, (run_id, log_text[:2000])
        assert json.loads(start.group(1))["qty"] == 100
        # ... and, for a simulated run, what its bars came from (`replay` makes them again)
        world = re.search(
            rf"run {re.escape(run_id)} started: .*, feed iex, simulator (\{{.*?\}}), params", log_text
        )
        assert world and json.loads(world.group(1)) == {"data": None, "partial_fills": False, "seed": 7}

    real = bot("trades", cwd=tmp_path)
    assert real.returncode == 0 and "no journal at past_trades.json yet" in real.stdout
    assert "breakout-bot trades --simulated" in real.stdout
    listed = bot("trades", "--simulated", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("simulator · account PSIM") == 3  # one table per run's account
    assert " 200 " not in listed.stdout  # no trade merges two runs
    # the run's summary and `trades` agree on its P&L, to the cent
    aapl_total = summary(first.stdout)[1]
    assert f"realized P&L {aapl_total}" in listed.stdout


def test_a_second_bot_on_the_same_journal_is_refused(tmp_path: Path) -> None:
    journal = Journal(tmp_path / SIM_JOURNAL)
    (tmp_path / "simulated").mkdir()
    journal.claim(f"pid {os.getpid()}, a test")
    try:
        proc = bot("run", "--symbol", "AAPL", "--start", DAY, cwd=tmp_path)
    finally:
        journal.release()
    assert proc.returncode == 5
    line = error_line(proc)
    assert f"in use by another breakout-bot (pid {os.getpid()}, a test)" in line and "--journal" in line
    assert records(tmp_path) == []
    assert "SIMULATED" not in proc.stdout  # refused before it started anything


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--qty", "1.5"], "error: --qty: expected a whole number, got '1.5'"),
        (["--days", "x"], "error: --days: expected a whole number, got 'x'"),
        (["--speed", "fast"], "error: --speed: expected a number, got 'fast'"),
        (["--frobnicate"], "error: unrecognized arguments: --frobnicate"),
    ],
)
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    proc = bot("run", "--symbol", "AAPL", *args, cwd=tmp_path, timeout=30)
    assert proc.returncode == 2
    line = error_line(proc)
    assert line.startswith(expected) and "`breakout-bot run --help`" in line
    assert "usage:" not in proc.stderr


def _bad_data(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.csv"
    header = "Datetime,Open,High,Low,Close,Volume\n"
    if kind == "empty":
        path.write_text("")
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 8)
    elif kind == "header_only":
        path.write_text(header)
    elif kind == "wrong_columns":
        path.write_text("when,price\n2024-03-04 09:30,100\n")
    elif kind == "bad_date":
        path.write_text(header + "2024-03-04 09:30:00,1,1,1,1,1\nnot a date,1,1,1,1,1\n")
    elif kind == "directory":
        path = tmp_path / "folder"
        path.mkdir()
        (path / "notes.txt").write_text("no bars here")
    elif kind == "missing":
        path = tmp_path / "nowhere.csv"
    elif kind == "unreadable":
        path.write_text(header + "2024-03-04 09:30:00,1,1,1,1,1\n")
        path.chmod(0)
    return path


@pytest.mark.parametrize(
    "kind",
    ["empty", "binary", "header_only", "wrong_columns", "bad_date", "directory", "missing", "unreadable"],
)
def test_bad_data_is_the_same_one_line_for_run_backtest_and_sim(tmp_path: Path, kind: str) -> None:
    """One loader, one set of messages: `run --data` printed `internal error: EmptyDataError` where
    `backtest` and `sim` printed `error: --data: …`."""
    if kind == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode")
    data = str(_bad_data(tmp_path, kind))
    runs = [
        bot("run", "--symbol", "SPY", "--data", data, cwd=tmp_path, timeout=60),
        bot("backtest", "--symbol", "SPY", "--data", data, cwd=tmp_path, timeout=60),
        bot("sim", "--symbols", "SPY", "--data", data, cwd=tmp_path, timeout=60),
    ]
    lines = [error_line(p) for p in runs]
    assert [p.returncode for p in runs] == [2, 2, 2]
    assert lines[0].startswith("error: --data: ")
    assert lines[0] == lines[1] == lines[2], lines
    if kind != "missing":
        mode = stat.S_IMODE(Path(data).stat().st_mode)
        assert mode or kind == "unreadable"  # nothing was moved or changed


def test_run_data_follows_the_files_sessions(tmp_path: Path) -> None:
    """`--days 7` on a 7-session file traded an empty day instead of reaching the last session."""
    proc = bot("run", "--symbol", "SPY", "--data", str(SAMPLE_SPY), "--days", "7", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    days = {r["timestamp"][:10] for r in records(tmp_path)}
    assert "2023-08-03" in days and days <= {
        "2013-10-04",
        "2013-10-07",
        "2013-10-08",
        "2013-10-09",
        "2013-10-10",
        "2013-10-11",
        "2023-08-03",
    }
    assert "over 7 sessions" in proc.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--days", "8"], "--days 8: spy_1min.csv has 7 session(s) from 2013-10-04"),
        (["--start", "2013-10-05"], "--start 2013-10-05: spy_1min.csv has no bars that day"),
        (["--start", "2023-08-03", "--days", "2"], "--days 2: spy_1min.csv has 1 session(s) from 2023-08-03"),
        (["--start", "1985-01-02"], "no bars that day (7 sessions, 2013-10-04 to 2023-08-03); its next"),
    ],
)
def test_a_requested_date_without_data_is_said(tmp_path: Path, args: list[str], needle: str) -> None:
    proc = bot("run", "--symbol", "SPY", "--data", str(SAMPLE_SPY), *args, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert needle in error_line(proc)
    assert records(tmp_path) == []


def test_outside_the_calendar_is_refused(tmp_path: Path) -> None:
    proc = bot("run", "--symbol", "AAPL", "--start", "1985-01-02", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "--start 1985-01-02: outside the NYSE calendar (1990-01-02 to " in error_line(proc)


def test_an_old_start_date_trades_that_date(tmp_path: Path) -> None:
    """`--start 1999-01-04` silently traded 2006-12-01, the start of exchange-calendars' window."""
    proc = bot("run", "--symbol", "AAPL", "--start", "1999-01-04", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    stamps = {r["timestamp"][:10] for r in records(tmp_path)}
    assert stamps == {"1999-01-04"}
    assert "realized P&L 1999-01-04" in proc.stdout


def test_once_on_a_holiday_exits_at_once(tmp_path: Path) -> None:
    """`--once` means today's session or nothing: on Christmas it slept and traded the 26th."""
    proc = bot("run", "--symbol", "AAPL", "--start", "2024-12-25", "--once", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "market closed today (Wed 2024-12-25): nothing to trade" in proc.stdout
    assert records(tmp_path) == []
    log = (tmp_path / "logs" / "simulated" / "breakout-bot.log").read_text().splitlines()
    assert log and not any(line.startswith("2024-12-26") for line in log)  # it never slept into the 26th


def test_unknown_variables_warn_and_typos_are_refused(tmp_path: Path) -> None:
    proc = bot("run", "--symbol", "AAPL", "--start", DAY, cwd=tmp_path, env={"BREAKOUT_FOO": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "warning: BREAKOUT_FOO: unknown variable, ignored (.env.example lists the known ones)"
    ]
    typo = bot("run", "--symbol", "AAPL", cwd=tmp_path, env={"BREAKOUT_SYMBOL": "AAPL"}, timeout=30)
    assert typo.returncode == 2
    assert "BREAKOUT_SYMBOL: unknown variable (did you mean BREAKOUT_SYMBOLS?)" in error_line(typo)


def test_piped_output_is_one_line_per_event_and_logs_in_simulated_new_york_time(tmp_path: Path) -> None:
    """Under cron or journald the lines were wrapped mid-sentence at 80 columns."""
    proc = bot("run", "--symbol", "AAPL", "--start", DAY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    stamp = re.compile(r"^2024-03-04 \d\d:\d\d:\d\d New York · AAPL: ")
    for line in lines:
        assert line.startswith(("SIMULATED", "simulated run ", "simulated fills")) or stamp.match(line), line
    assert max(len(line) for line in lines) > 100  # long lines stay whole
    phases = [line.split("AAPL: ")[1].split(" · ")[0] for line in lines if stamp.match(line)]
    assert "waiting for a breakout" in phases and "in trade" in phases
    assert any(p.startswith("done for today: ") for p in phases)
    assert all("_" not in p for p in phases)  # words, not state names
    log = (tmp_path / "logs" / "simulated" / "breakout-bot.log").read_text().splitlines()
    # The process's start line is stamped when the process started (wall time: the simulator does not
    # exist yet); from the simulator's start on, simulated time, New York.
    assert " starting: mode simulator" in log[0]
    assert log[1].startswith("2024-03-04T09:25:00.000-05:00 INFO")
    start = next(line for line in log if " started: " in line)
    assert "mode simulator, account PSIM" in start and '"qty": 100' in start
    run_id = start.split(" run ")[1].split(" ")[0]
    assert {r["run"] for r in records(tmp_path)} == {run_id}


def test_a_real_accounts_kill_switch_does_not_block_a_simulated_run(tmp_path: Path) -> None:
    journal = tmp_path / "past_trades.json"
    engage(tmp_path / "breakout-bot.halt", __import__("datetime").date(2024, 3, 4), "manual flatten", "paper")
    proc = bot("run", "--symbol", "AAPL", "--start", DAY, "--journal", str(journal), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "kill switch" not in proc.stdout
    assert records(tmp_path, journal)  # it traded
    assert "trades --simulated" not in proc.stdout  # --journal given: no "kept apart" note


def test_run_says_up_front_that_the_kill_switch_is_engaged(tmp_path: Path) -> None:
    (tmp_path / "simulated").mkdir()
    engage(
        tmp_path / "simulated" / "breakout-bot.halt",
        __import__("datetime").date(2024, 3, 4),
        "manual flatten",
        "simulator",
    )
    proc = bot("run", "--symbol", "AAPL", "--start", DAY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (
        "kill switch engaged today (manual flatten): no entries until tomorrow; "
        "`breakout-bot flatten --clear` lifts it" in proc.stdout
    )
    assert records(tmp_path) == []  # no entry all day
