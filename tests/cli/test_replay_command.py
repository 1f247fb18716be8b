"""`breakout-bot replay` as a user runs it: after a simulated run, in a terminal-less subprocess; bad
input is one line; the run's start line is read as this and earlier versions wrote it."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from breakout_bot.cli.commands.replay import bar_gaps, read_run_log, signals_and_incidents
from breakout_bot.core.model import NEW_YORK

from .helpers import bot, error_line

DAY = "2024-03-05"


def test_a_simulated_day_replays_as_a_table_json_and_a_chart(tmp_path: Path) -> None:
    ran = bot("run", "--symbol", "AAPL", "--start", DAY, "--feed", "sip", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    table = bot("replay", "--date", DAY, "--simulated", "--png", "replay.png", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    out = table.stdout
    assert "AAPL 2024-03-05: live vs rehearsal (run " in out
    assert "verdict: decisions matched 6/6, exact (every price) 6/6; slippage +0.00" in out
    assert len(re.findall(r"^ +\d= +live +(long|short) ", out, re.M)) == 6  # every row exact: `=`
    assert len(re.findall(r"^ +rehearsal +(long|short) ", out, re.M)) == 6
    assert "first divergence" not in out
    assert "note: bars: the simulator's synthetic bars, seed 7" in out
    png = tmp_path / "replay.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    as_json = bot("replay", "--date", DAY, "--simulated", "--json", "--symbol", "aapl", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["symbol"] == "AAPL" and report["feed"] == "sip" and len(report["rows"]) == 6
    assert report["verdict"]["live_pnl"] == report["verdict"]["rehearsal_pnl"]


def _journal(path: Path, rows: list[tuple[str, str, str]]) -> None:
    """A journal file of entries: (symbol, run, mode)."""
    records = [
        {
            "id": f"x{n}",
            "order_id": f"o{n}",
            "client_order_id": f"bb-{symbol}-20240305-1",
            "symbol": symbol,
            "side": "buy",
            "qty": "100",
            "price": "100",
            "timestamp": "2024-03-05T15:00:10Z",
            "leg": "entry",
            "source": "rest",
            "cum_qty": "100",
            "mode": mode,
            "account": "PA1",
            "run": run,
        }
        for n, (symbol, run, mode) in enumerate(rows)
    ]
    path.write_text(json.dumps(records))


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    assert "no journal at past_trades.json" in error_line(bot("replay", "--date", DAY, cwd=tmp_path))
    assert "--date" in error_line(bot("replay", "--date", "2024-13-05", cwd=tmp_path))
    _journal(tmp_path / "past_trades.json", [("AAPL", "r1", "paper"), ("MSFT", "r1", "paper")])
    two = bot("replay", "--date", DAY, cwd=tmp_path)
    assert two.returncode == 2 and "AAPL, MSFT traded that day; pick one with --symbol" in error_line(two)
    other_run = bot("replay", "--date", DAY, "--symbol", "AAPL", "--run", "r2", cwd=tmp_path)
    assert other_run.returncode == 1 and "no fills of run r2 on 2024-03-05 for AAPL" in error_line(other_run)
    none = bot("replay", "--date", "2024-03-06", cwd=tmp_path)
    assert none.returncode == 1 and "no fills on 2024-03-06" in error_line(none)
    missing = bot("replay", "--date", DAY, "--symbol", "MSFT", cwd=tmp_path)
    assert missing.returncode == 2
    assert "MSFT 2024-03-05 is not in the bars cache data/cache, and there are no Alpaca keys" in error_line(
        missing
    )


def test_a_simulated_run_without_its_seed_cannot_be_replayed(tmp_path: Path) -> None:
    """A run logged by an earlier breakout-bot: its start line has the parameters but not the seed."""
    (tmp_path / "simulated").mkdir()
    _journal(tmp_path / "simulated" / "past_trades.json", [("AAPL", "r-old", "simulator")])
    (tmp_path / "logs" / "simulated").mkdir(parents=True)
    (tmp_path / "logs" / "simulated" / "breakout-bot.log").write_text(
        "2024-03-05T09:25:00.000-05:00 INFO    breakout_bot.cli.commands.run: run r-old started: mode simulator, "
        'account PSIM1, symbols AAPL, journal simulated/past_trades.json, breakout-bot 0.1.0, params {"qty": 100}\n'
    )
    old = bot("replay", "--date", DAY, "--simulated", cwd=tmp_path)
    assert old.returncode == 1 and "did not log its seed" in error_line(old)


def test_the_start_line_is_read_as_this_and_earlier_versions_wrote_it(tmp_path: Path) -> None:
    log = tmp_path / "breakout-bot.log"
    prefix = "2024-03-05T09:25:00.000-05:00 INFO    breakout_bot.cli.commands.run: run"
    rotated = tmp_path / "breakout-bot.log.2024-03-04"
    rotated.write_text(
        f'{prefix} r1 started: mode paper, account PA1, symbols AAPL, journal j, breakout-bot 0.1.0, params {{"qty": 5}}\n'
    )
    log.write_text(
        f"{prefix} r2 started: mode simulator, account PSIM2, symbols AAPL,MSFT, journal simulated/j, "
        'breakout-bot 0.1.0, feed iex, simulator {"data": null, "partial_fills": true, "seed": 3}, '
        'params {"lookback": 12, "qty": 100}\n'
        '{"ts": "2024-03-05T09:41:00.000-05:00", "level": "INFO", "logger": "x", "message": "AAPL: box 1-2 range 1"}\n'
        "2024-03-06T09:41:00.000-05:00 INFO    x: AAPL: another day\n"
        "not a log line\n"
    )
    read = read_run_log(log, dt.date(2024, 3, 5))
    assert read.starts["r1"]["params"] == {"qty": 5} and read.starts["r1"]["feed"] is None
    assert read.starts["r1"]["sim"] is None and read.starts["r1"]["mode"] == "paper"
    r2 = read.starts["r2"]
    assert (r2["feed"], r2["sim"], r2["params"]) == (
        "iex",
        {"data": None, "partial_fills": True, "seed": 3},
        {"lookback": 12, "qty": 100},
    )
    assert [m for _, m in read.lines] == ["AAPL: box 1-2 range 1"]


def test_the_logs_signals_and_incidents_are_read_by_kind(tmp_path: Path) -> None:
    lines = [
        ("09:41", "AAPL: box 99.5000-100.5000 range 1.0000 from 10 bars ending 09:40"),
        ("09:42", "AAPL: long breakout: 09:41 bar close 100.6 > 100.5; buy 100 stop 99.5 take-profit 101.5"),
        ("09:43", "MSFT: entry bb-MSFT-20240305-1 refused: insufficient buying power; searching again"),
        ("10:05", "AAPL: stale signal: 10:01 bar is 3 min old; not trading it"),
        ("10:20", "AAPL: entry bb-AAPL-20240305-2 not sent: its signal is 95 s old"),
        ("10:30", "AAPL: trade stream down; entry blocked until it reconnects"),
        ("11:00", "AAPL: entry bb-AAPL-20240305-3 refused: insufficient buying power; searching again"),
        ("11:10", "AAPL: entry rejected; searching again"),
        ("11:20", "AAPL: entry bb-AAPL-20240305-4 outcome unknown (HTTP 503); reconciling"),
        ("12:00", "AAPL: kill switch engaged (flatten): no entries until tomorrow"),
    ]
    log = tmp_path / "breakout-bot.log"
    log.write_text(
        "".join(f"2024-03-05T{hm}:00.000-05:00 INFO    breakout_bot.x: {message}\n" for hm, message in lines)
    )
    signals, incidents = signals_and_incidents(
        read_run_log(log, dt.date(2024, 3, 5)), "AAPL", dt.date(2024, 3, 5)
    )
    (signal,) = signals
    assert (signal.side, f"{signal.bar:%H:%M}", signal.box.high, signal.box.low) == (
        "buy",
        "09:41",
        100.5,
        99.5,
    )
    kinds = [i.kind for i in incidents]
    assert kinds == [
        "late bar",
        "stale bar",
        "stream down",
        "rejected order",
        "rejected order",
        "order outcome unknown",
        "manual flatten",
    ]
    starts = [dt.datetime(2024, 3, 5, 9, m, tzinfo=NEW_YORK) for m in (30, 31, 35, 36)]
    (gap,) = bar_gaps(starts)
    assert gap.kind == "gap" and gap.text == "no bar for 3 minute(s) from 09:32"
