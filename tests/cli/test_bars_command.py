"""`breakout-bot bars` against the simulator on loopback: download, resume, pagination, atomic writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from breakout_bot.cli.main import main
from breakout_bot.errors import DataError
from breakout_bot.market import cache as bars_cache
from breakout_bot.market.bars import load_bars

KEY = "PKBARSTEST000001"
SECRET = "bars-secret-0123456789"
START = dt.date(2024, 3, 11)  # the simulator starts Monday 2024-03-11 09:25 ET: earlier days have closed


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    from breakout_bot.sim import SimConfig, SimServer

    server = SimServer(SimConfig(symbols=("AAPL",), speed=0.0, seed=7, key=KEY, secret=SECRET, start=START))
    url = server.start()
    monkeypatch.chdir(tmp_path)  # no stray .env
    for var in ("APCA_API_BASE_URL", "APCA_API_DATA_URL"):
        monkeypatch.setenv(var, url)
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    server.url = url
    try:
        yield server
    finally:
        server.stop()


def bar_requests(url: str) -> int:
    log = requests.get(f"{url}/sim/requests", timeout=5).json()
    return sum(1 for r in log if r["path"] == "/v2/stocks/AAPL/bars")


def run_bars(
    cache: Path, start: str = "2024-03-01", end: str = "2024-03-12", *extra: str, feed: str = "sip"
) -> int:
    """The consolidated feed by default: every minute has a bar (the IEX feed has gaps)."""
    args = ["--symbol", "AAPL", "--start", start, "--end", end, "--cache-dir", str(cache), "--feed", feed]
    return main(["bars", *args, *extra])


def test_the_iex_feed_has_missing_minutes(sim: Any, tmp_path: Path) -> None:
    """Alpaca's free feed: a minute without an IEX print has no bar (Market Data FAQ)."""
    assert run_bars(tmp_path / "iex", "2024-03-04", "2024-03-04", feed="iex") == 0
    assert run_bars(tmp_path / "sip", "2024-03-04", "2024-03-04") == 0
    iex = pd.read_parquet(tmp_path / "iex" / "AAPL" / "2024-03-04.parquet")
    sip = pd.read_parquet(tmp_path / "sip" / "AAPL" / "2024-03-04.parquet")
    assert len(sip) == 390 and 300 < len(iex) < 390
    assert set(iex["timestamp"]) < set(sip["timestamp"])
    assert iex["volume"].sum() < sip["volume"].sum() * 0.05  # ~2 % of the volume


def test_download_then_resume(sim: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    assert run_bars(cache) == 0
    out = capsys.readouterr().out
    days = ["2024-03-01", "2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"]
    assert sorted(f.stem for f in (cache / "AAPL").glob("*.parquet")) == days
    assert "2024-03-11: session not closed yet" in out
    assert out.count(": 390 bars") == 6  # one progress line per day
    assert bar_requests(sim.url) == 1  # consecutive days in one request (6 x 390 bars: one page)
    assert not [f for f in (cache / "AAPL").iterdir() if not f.name.endswith(".parquet")]  # no temp files

    raw = pd.read_parquet(cache / "AAPL" / "2024-03-04.parquet")
    assert list(raw.columns) == list(bars_cache.COLUMNS)
    assert str(raw["timestamp"].dt.tz) == "UTC"
    assert raw["timestamp"].iloc[0] == pd.Timestamp("2024-03-04 14:30", tz="UTC")
    assert raw["timestamp"].iloc[-1] == pd.Timestamp("2024-03-04 20:59", tz="UTC")
    assert raw["trade_count"].notna().all() and raw["vwap"].notna().all()

    # resume: nothing is downloaded again
    assert run_bars(cache) == 0
    out = capsys.readouterr().out
    assert out.count("cached, skipped") == 6 and "0 day(s) downloaded" in out
    assert bar_requests(sim.url) == 1

    # a missing day is fetched alone
    (cache / "AAPL" / "2024-03-06.parquet").unlink()
    assert run_bars(cache) == 0
    assert bar_requests(sim.url) == 2
    assert len(pd.read_parquet(cache / "AAPL" / "2024-03-06.parquet")) == 390


def test_pages_are_all_fetched(sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from breakout_bot.broker.alpaca import marketdata

    monkeypatch.setattr(marketdata, "BARS_PAGE", 100)
    cache = tmp_path / "cache"
    assert run_bars(cache, "2024-03-04", "2024-03-04") == 0
    assert bar_requests(sim.url) == 4  # 390 bars in pages of 100
    assert len(pd.read_parquet(cache / "AAPL" / "2024-03-04.parquet")) == 390


def test_the_bar_loader_reads_the_cache(sim: Any, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert run_bars(cache, "2024-03-04", "2024-03-05") == 0
    df = load_bars(cache, "AAPL")
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert str(df.index.tz) == "America/New_York" and df.index.name == "timestamp"
    assert len(df) == 780 and df.index.is_monotonic_increasing and df.index.is_unique
    assert df.index[0] == pd.Timestamp("2024-03-04 09:30", tz="America/New_York")
    assert len(load_bars(cache / "AAPL", "AAPL")) == 780  # the symbol folder works too
    assert len(load_bars(cache / "AAPL" / "2024-03-05.parquet", "AAPL")) == 390
    assert len(load_bars(cache)) == 780  # one symbol cached: no need to name it


def test_weekend_range_and_bad_range(sim: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_bars(tmp_path / "c", "2024-03-09", "2024-03-10") == 0
    assert "no trading days" in capsys.readouterr().out
    assert run_bars(tmp_path / "c", "2024-03-08", "2024-03-01") == 2
    assert "before --start" in capsys.readouterr().err


def test_bad_keys(
    sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APCA_API_SECRET_KEY", "wrong-secret-value")
    assert run_bars(tmp_path / "c") == 3
    err = capsys.readouterr().err
    assert "refused" in err and "wrong-secret-value" not in err
    assert not (tmp_path / "c" / "AAPL").exists() or not list((tmp_path / "c" / "AAPL").iterdir())


def test_no_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert run_bars(tmp_path / "c") == 2
    assert "needs Alpaca API keys" in capsys.readouterr().err


def test_write_day_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"t": "2024-03-04T14:30:00Z", "o": 1, "h": 2, "l": 0.5, "c": 1.5, "v": 10, "n": 3, "vw": 1.2}]

    def boom(self: pd.DataFrame, *a: object, **k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(OSError):
        bars_cache.write_day(tmp_path, "AAPL", dt.date(2024, 3, 4), rows)
    assert list((tmp_path / "AAPL").iterdir()) == []  # neither the file nor a temp file
    monkeypatch.undo()
    path = bars_cache.write_day(tmp_path, "aapl", dt.date(2024, 3, 4), rows)
    assert path == tmp_path / "AAPL" / "2024-03-04.parquet" and bars_cache.is_cached(
        tmp_path, "AAPL", dt.date(2024, 3, 4)
    )
    assert bars_cache.cached_days(tmp_path, "AAPL") == [dt.date(2024, 3, 4)]


def test_an_empty_cache_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"holds no \.parquet bar files"):
        load_bars(tmp_path, "AAPL")


def test_batches_stop_at_cached_days_and_at_one_page(
    sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from breakout_bot.cli.commands import bars as command

    monkeypatch.setattr(command, "BATCH_SESSIONS", 2)
    cache = tmp_path / "cache"
    assert run_bars(cache, "2024-03-05", "2024-03-05") == 0  # one day cached in the middle
    assert run_bars(cache, "2024-03-01", "2024-03-08") == 0
    # 03-01 and 03-04 (one batch), 03-05 cached, 03-06 + 03-07 (full batch), 03-08
    assert bar_requests(sim.url) == 1 + 3
    assert len(load_bars(cache, "AAPL")) == 6 * 390


def test_universe_download_compact_and_read_back(
    sim: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    universe = tmp_path / "universe.txt"
    universe.write_text("# the universe\naapl\n\n")
    cache = tmp_path / "cache"
    code = main(
        [
            "bars",
            "--universe",
            str(universe),
            "--start",
            "2024-03-01",
            "--end",
            "2024-03-05",
            "--cache-dir",
            str(cache),
            "--feed",
            "sip",  # every minute has a bar (the IEX feed has gaps)
            "--compact",
        ]
    )
    assert code == 0
    before = load_bars(cache, "AAPL")
    assert sorted(f.name for f in (cache / "AAPL").iterdir()) == ["2024.parquet"]  # day files merged
    assert "AAPL: compacted 2024" in capsys.readouterr().out
    assert bars_cache.cached_days(cache, "AAPL") == [dt.date(2024, 3, d) for d in (1, 4, 5)]
    # resume over the compacted year: only the new days are fetched, then merged in
    requests = bar_requests(sim.url)
    assert run_bars(cache, "2024-03-01", "2024-03-07") == 0
    assert bar_requests(sim.url) == requests + 1
    assert main(["bars", "--compact", "--cache-dir", str(cache)]) == 0  # alone: no keys needed
    after = load_bars(cache, "AAPL")
    assert len(after) == 5 * 390 and after.iloc[: len(before)].equals(before)
    assert len(load_bars(cache, "AAPL", start=dt.date(2024, 3, 4), end=dt.date(2024, 3, 5))) == 780
