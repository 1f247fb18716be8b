"""`breakout-bot backtest` end to end through the CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from shared_data import SAMPLE_SPY

from breakout_bot.cli.main import main

from .helpers import CONSOLE, clean_env


@pytest.fixture
def bars_csv(tmp_path: Path) -> Path:
    """A small file in a different layout (date + time columns, short names, naive times)."""
    from breakout_bot.market.synthetic import synthetic_bars

    df = synthetic_bars("ABC", 4, 3)
    local = df.index.tz_localize(None)
    out = pd.DataFrame(
        {
            "Date": local.strftime("%Y-%m-%d"),
            "Time": local.strftime("%H:%M"),
            "O": df["open"].to_numpy(),
            "H": df["high"].to_numpy(),
            "L": df["low"].to_numpy(),
            "C": df["close"].to_numpy(),
            "Vol": df["volume"].to_numpy(),
        }
    )
    path = tmp_path / "abc.csv"
    out.to_csv(path, index=False)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["backtest", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_file_backtest_writes_everything(
    tmp_path: Path, bars_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys,
        "--symbol",
        "ABC",
        "--data",
        str(bars_csv),
        "--commission",
        "0.005",
        "--slippage",
        "0.01",
        "--trades-out",
        str(tmp_path / "t.csv"),
        "--report",
        str(tmp_path / "r.html"),
        "--png",
        str(tmp_path / "r.png"),
    )
    assert code == 0, err
    assert "totals" in out and "net P&L" in out and "commissions" in out
    assert (tmp_path / "t.csv").read_text().startswith("symbol,side,qty,entry_time")
    html = (tmp_path / "r.html").read_text()
    assert 'class="plotly-graph-div"' in html and '<script src="https://cdn' not in html
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trades_json_and_date_range(
    tmp_path: Path, bars_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    all_days = pd.read_csv(bars_csv)["Date"].unique()
    code, out, err = run(
        capsys,
        "--symbol",
        "ABC",
        "--data",
        str(bars_csv),
        "--from",
        all_days[1],
        "--to",
        all_days[1],
        "--trades-out",
        str(tmp_path / "t.json"),
    )
    assert code == 0, err
    trades = json.loads((tmp_path / "t.json").read_text())
    assert trades and {t["entry_time"][:10] for t in trades} == {all_days[1]}
    assert "390 bars, 1 session\n" in out


def test_synthetic_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--days", "2", "--seed", "9")
    assert code == 0 and "totals" in out and "2 sessions" in out


def test_risk_pct_sizes_the_trades(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "t.json"
    code, _, err = run(
        capsys, "--days", "2", "--seed", "9", "--risk-pct", "0.5", "--trades-out", str(out_file)
    )
    assert code == 0, err
    trades = json.loads(out_file.read_text())
    assert trades and len({t["qty"] for t in trades}) > 1  # sized per trade, not the fixed 100


def test_real_spy_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--symbol", "SPY", "--data", str(SAMPLE_SPY), "--max-rows", "0")
    assert code == 0, err
    assert "7 sessions" in out and "win rate" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--data", "/nonexistent/bars.csv", "--symbol", "X"], "no such file"),
        (["--data", "{csv}", "--symbol", "ABC", "--from", "2024-13-01"], "--from"),
        (["--data", "{csv}", "--symbol", "ABC", "--from", "2024-02-01", "--to", "2024-01-01"], "after --to"),
        (["--data", "{bad}", "--symbol", "ABC"], "no timestamp column"),
        (["--data", "{noprice}", "--symbol", "ABC"], "no 'high' column"),
        (["--data", "{empty}", "--symbol", "ABC"], "empty"),
        (["--data", "{csv}", "--symbol", "ABC", "--from", "2030-01-01"], "no bars between"),
        (["--data", "{csv}", "--symbol", "ABC", "--qty", "0"], "--qty"),
        (["--data", "{csv}", "--symbol", "ABC", "--risk-pct", "100"], "--risk-pct"),
        (["--data", "{csv}", "--symbol", "ABC", "--risk-pct", "nan"], "--risk-pct"),
        (["--data", "{csv}", "--symbol", "ABC", "--risk-pct", "1", "--sweep", "lookback=5:6"], "--risk-pct"),
        (["--data", "{csv}", "--symbol", "ABC", "--trades-out", "x.txt"], ".csv or .json"),
        (["--data", "{csv}", "--symbol", "ABC", "--sweep", "lookback=5:6", "--report", "r.html"], "--report"),
        (
            ["--data", "{csv}", "--symbol", "ABC", "--sweep", "lookback=5:6", "--exact-events"],
            "--exact-events",
        ),
        (["--data", "{csv}", "--symbol", "ABC", "--heatmap", "h.png"], "only with --sweep"),
        (["--data", "{badtime}", "--symbol", "ABC"], "unreadable timestamp 'xx' in data row 2"),
        (
            ["--data", "{mixedtime}", "--symbol", "ABC"],
            "unreadable timestamp '01/02/2024 09:32' in data row 3",
        ),
        (["--data", "{csv}"], "--symbol is required"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(
    tmp_path: Path, bars_csv: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    (tmp_path / "bad.csv").write_text("when,price\n2024-01-02 09:30,1\n")
    (tmp_path / "noprice.csv").write_text("timestamp,open,low,close\n2024-01-02 09:30,1,1,1\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "badtime.csv").write_text("time,o,h,l,c\n2024-01-02 09:30,1,2,0.5,1.5\nxx,1,2,0.5,1.5\n")
    rows = "".join(f"{t},1,2,0.5,1.5\n" for t in ("2024-01-02 09:30", "2024-01-02 09:31", "01/02/2024 09:32"))
    (tmp_path / "mixedtime.csv").write_text("time,o,h,l,c\n" + rows)
    files = {
        "{csv}": str(bars_csv),
        "{bad}": str(tmp_path / "bad.csv"),
        "{noprice}": str(tmp_path / "noprice.csv"),
        "{empty}": str(tmp_path / "empty.csv"),
        "{badtime}": str(tmp_path / "badtime.csv"),
        "{mixedtime}": str(tmp_path / "mixedtime.csv"),
    }
    code, out, err = run(capsys, *[files.get(a, a) for a in args])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert "Traceback" not in err + out


# A sitecustomize that says when the interpreter's teardown runs (its atexit handlers): the executable
# skips that teardown after a backtest (cli/main.py `console`), and only there.
_TEARDOWN_PROBE = 'import atexit, sys\natexit.register(lambda: sys.stderr.write("teardown ran\\n"))\n'


@pytest.mark.parametrize(
    ("argv", "code", "teardown"),
    [
        (["backtest", "--days", "3", "--seed", "9", "--trades-out", "t.csv"], 0, False),
        (["backtest", "--data", "missing.csv", "--symbol", "ABC"], 2, False),
        (["trades", "--journal", "none.json"], None, True),  # not a command that leaves nothing running
    ],
)
def test_the_executable_skips_the_teardown_after_a_backtest_and_loses_no_output(
    tmp_path: Path, argv: list[str], code: int | None, teardown: bool
) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(_TEARDOWN_PROBE)
    env = clean_env({"PYTHONPATH": str(probe)})
    proc = subprocess.run(
        [str(CONSOLE), *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert ("teardown ran" in proc.stderr) is teardown, proc.stderr
    if code is not None:
        assert proc.returncode == code, proc.stderr
    if code == 0:
        # Everything the command printed and wrote is there: the same as the in-process command.
        assert proc.stdout == _in_process(tmp_path, argv, "t-in-process.csv")
        assert (tmp_path / "t.csv").read_text() == (tmp_path / "t-in-process.csv").read_text()
    elif code == 2:
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1


def _in_process(cwd: Path, argv: list[str], trades: str) -> str:
    argv = [trades if a == "t.csv" else a for a in argv]
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from breakout_bot.cli.main import main; sys.exit(main())", *argv],
        cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return proc.stdout.replace(trades, "t.csv")
