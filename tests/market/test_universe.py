"""Many symbols' bars from one file, a folder of per-symbol files, or a bars cache."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from breakout_bot.errors import DataError
from breakout_bot.market import cache
from breakout_bot.market.bars import load_bars
from breakout_bot.market.synthetic import synthetic_bars
from breakout_bot.market.universe import load_universe, parse_symbols, read_universe_file

SYMBOLS = ["AAA", "BBB"]


@pytest.fixture
def frames() -> dict[str, pd.DataFrame]:
    return {s: synthetic_bars(s, 5, 3, start=dt.date(2024, 3, 4)) for s in SYMBOLS}


def _same(loaded: dict[str, pd.DataFrame], frames: dict[str, pd.DataFrame]) -> None:
    assert list(loaded) == list(frames)
    for s, frame in frames.items():
        assert loaded[s].index.equals(frame.index)
        assert (
            loaded[s][["open", "high", "low", "close"]].to_numpy()
            == frame[["open", "high", "low", "close"]].to_numpy()
        ).all()


def test_a_file_with_a_symbol_column(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> None:
    rows = pd.concat([f.assign(symbol=s) for s, f in frames.items()]).reset_index()
    path = tmp_path / "all.csv"
    rows.sample(frac=1.0, random_state=3).to_csv(path, index=False)  # any row order
    _same(dict(load_universe(path, SYMBOLS)), frames)
    with pytest.raises(DataError, match="no rows for symbol CCC"):
        dict(load_universe(path, ["CCC"]))
    day = dt.date(2024, 3, 5)
    one_day = dict(load_universe(path, SYMBOLS, start=day, end=day))
    assert all(set(f.index.date) == {day} for f in one_day.values())


def test_a_folder_of_per_symbol_files(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> None:
    frames["AAA"].reset_index().to_csv(tmp_path / "AAA.csv", index=False)
    frames["BBB"].reset_index().to_parquet(tmp_path / "bbb.parquet", index=False)  # any case
    _same(dict(load_universe(tmp_path, SYMBOLS)), frames)
    with pytest.raises(DataError, match=r"no bars for CCC .*CCC\.csv"):
        dict(load_universe(tmp_path, ["CCC"]))


def test_a_bars_cache(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> None:
    for s, frame in frames.items():
        for day, bars in frame.groupby(frame.index.date):
            records = [
                {
                    "t": t.tz_convert("UTC").isoformat(),
                    "o": r.open,
                    "h": r.high,
                    "l": r.low,
                    "c": r.close,
                    "v": r.volume,
                }
                for t, r in bars.iterrows()
            ]
            cache.write_day(tmp_path, s, day, records)
    cache.compact(tmp_path, "AAA")  # one compacted, one not
    _same(dict(load_universe(tmp_path, SYMBOLS)), frames)
    assert load_bars(tmp_path, "BBB").index.equals(frames["BBB"].index)


def test_universe_files_and_symbol_lists(tmp_path: Path) -> None:
    path = tmp_path / "u.txt"
    path.write_text("# large caps\nAAPL\nmsft  # a comment\n\nBRK.B, spy\nAAPL\n")
    assert read_universe_file(path) == ["AAPL", "MSFT", "BRK.B", "SPY"]
    assert parse_symbols(["aapl,MSFT", " spy "], "--symbols") == ["AAPL", "MSFT", "SPY"]
    path.write_text("AAPL\nnot a ticker\n")
    with pytest.raises(DataError, match=r"not a ticker: 'not a ticker' \(line 2"):
        read_universe_file(path)
    path.write_text("# nothing\n")
    with pytest.raises(DataError, match="lists no symbols"):
        read_universe_file(path)
    with pytest.raises(DataError, match="no such file"):
        read_universe_file(tmp_path / "missing.txt")


def test_several_symbols_need_a_symbol_column(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> None:
    path = tmp_path / "one.csv"
    frames["AAA"].reset_index().to_csv(path, index=False)
    with pytest.raises(DataError, match="no symbol column"):
        dict(load_universe(path, SYMBOLS))
