"""`breakout-bot backtest --symbols A,B / --universe FILE`: one report for several symbols, through the CLI."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from breakout_bot.cli.main import main
from breakout_bot.market.synthetic import synthetic_bars

SYMBOLS = ("AAA", "BBB")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder of per-symbol files."""
    data = tmp_path / "bars"
    data.mkdir()
    for s in SYMBOLS:
        synthetic_bars(s, 3, 4, start=dt.date(2024, 3, 4)).reset_index().to_csv(
            data / f"{s}.csv", index=False
        )
    return data


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["backtest", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_report_with_a_row_per_symbol_and_the_portfolio(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trades = tmp_path / "t.json"
    report = tmp_path / "r.html"
    code, out, err = run(
        capsys,
        "--data",
        str(folder),
        "--symbols",
        "AAA,BBB",
        "--trades-out",
        str(trades),
        "--report",
        str(report),
    )
    assert code == 0, err
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│")}
    assert {"AAA", "BBB", "portfolio"} <= set(rows)
    written = json.loads(trades.read_text())
    assert {t["symbol"] for t in written} == set(SYMBOLS)
    assert f"│ {len(written):>6} │" in rows["portfolio"]
    assert "Plotly.newPlot" in report.read_text()
    # each symbol's rows are its own backtest's: the single-symbol command prints the same count
    for s in SYMBOLS:
        code, single, _ = run(capsys, "--data", str(folder / f"{s}.csv"), "--symbol", s, "--max-rows", "0")
        count = sum(1 for t in written if t["symbol"] == s)
        assert code == 0 and f"│ trades                     │ {count:>24} │" in single


def test_a_universe_file_and_a_file_with_a_symbol_column(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = pd.concat([pd.read_csv(folder / f"{s}.csv").assign(symbol=s) for s in SYMBOLS])
    both = tmp_path / "both.parquet"
    rows.to_parquet(both, index=False)
    universe = tmp_path / "u.txt"
    universe.write_text("# two\nbbb\naaa\n")
    code, out, err = run(
        capsys, "--data", str(both), "--universe", str(universe), "--png", str(tmp_path / "p.png")
    )
    assert code == 0, err
    symbols = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")][:3]
    assert symbols == ["BBB", "AAA", "portfolio"]  # in the universe's order
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_a_sweep_over_several_symbols(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "s.csv"
    code, out, err = run(
        capsys,
        "--data",
        str(folder),
        "--symbols",
        "AAA,BBB",
        "--sweep",
        "lookback=5:6",
        "--sweep-out",
        str(csv),
    )
    assert code == 0, err
    assert "2 symbols (AAA, BBB)" in out and len(pd.read_csv(csv)) == 2


def test_max_positions_one_never_holds_two_symbols(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spans = {}
    for limit in ("0", "1"):
        trades = tmp_path / f"t{limit}.json"
        code, _out, err = run(
            capsys, "--data", str(folder), "--symbols", "AAA,BBB", "--max-positions", limit,
            "--trades-out", str(trades),
        )  # fmt: skip
        assert code == 0, err
        spans[limit] = sorted((t["entry_time"], t["exit_time"]) for t in json.loads(trades.read_text()))
    overlaps = [a for a, b in zip(spans["1"], spans["1"][1:], strict=False) if b[0] < a[1]]
    assert not overlaps and len(spans["1"]) < len(spans["0"])
    assert any(b[0] < a[1] for a, b in zip(spans["0"], spans["0"][1:], strict=False))  # unlimited overlaps


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--symbols", "AAA,BBB", "--sweep", "lookback=5:6", "--max-positions", "1"], "--max-positions"),
        (["--symbols", "AAA,CCC"], "no bars for CCC"),
        (["--symbols", "AAA,B B"], "not a ticker"),
        (["--symbols", "AAA,BBB", "--symbol", "AAA"], "--symbol and --symbols"),
        (["--universe", "/nonexistent/u.txt"], "no such file"),
        (["--symbols", "AAA,BBB", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "give one"),
    ],
)
def test_bad_universe_inputs_exit_2_with_one_line(
    folder: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, _out, err = run(capsys, "--data", str(folder), *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0], err


def test_help_imports_nothing_heavy() -> None:
    """`backtest --help` is answered from the flags alone: no pandas, numpy, numba, plotly or dask."""
    code = (
        "import sys\n"
        "from breakout_bot.cli.main import main\n"
        "assert main(['backtest', '--help']) == 0\n"
        "heavy = {'pandas', 'numpy', 'numba', 'plotly', 'matplotlib', 'distributed', 'exchange_calendars'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "--walk-forward" in out.stdout and "--universe" in out.stdout and "--workers" in out.stdout


def test_workers_without_dask_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the cluster extra were not installed
    code, _, err = run(capsys, "--days", "2", "--sweep", "lookback=5:6", "--workers", "2")
    assert code == 2 and err.count("\n") == 1 and "pip install -e '.[cluster]'" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--walk-forward", "6M:1M"], "only with --sweep"),
        (["--train-to", "2024-01-05"], "only with --sweep"),
        (["--workers", "2"], "--jobs"),
    ],
)
def test_flags_of_another_mode_are_one_clear_line(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, _, err = run(capsys, "--days", "3", *args)
    assert code == 2 and err.count("\n") == 1 and needle in err, err


def test_train_to_and_walk_forward_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "--sweep", "lookback=5:6", "--train-to", "2024-01-05", "--walk-forward", "1M:1M"
    )
    assert code == 2 and "not allowed with argument --train-to" in err  # argparse's own usage error
