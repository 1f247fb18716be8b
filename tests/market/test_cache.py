"""The bars cache's compaction: one file per symbol and year, read back through a pyarrow dataset."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from breakout_bot.market import cache
from breakout_bot.market.bars import load_bars


def _day(day: dt.date, n: int = 390, price: float = 10.0) -> list[dict[str, object]]:
    start = pd.Timestamp(day.isoformat() + " 09:30", tz="America/New_York").tz_convert("UTC")
    return [
        {"t": (start + pd.Timedelta(minutes=i)).isoformat(), "o": price, "h": price + 0.1, "l": price - 0.1,
         "c": price, "v": 100 + i, "n": 5, "vw": price}
        for i in range(n)
    ]  # fmt: skip


DAYS = [dt.date(2023, 12, 28), dt.date(2023, 12, 29), dt.date(2024, 1, 2), dt.date(2024, 1, 3)]


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    for day in DAYS:
        cache.write_day(tmp_path, "ABC", day, _day(day))
    cache.write_day(tmp_path, "ABC", dt.date(2024, 1, 4), [])  # the feed had nothing that day
    return tmp_path


def test_compaction_writes_one_file_per_year_and_keeps_every_day(filled: Path) -> None:
    before = load_bars(filled, "ABC")
    written = cache.compact(filled, "ABC")
    assert [p.name for p in written] == ["2023.parquet", "2024.parquet"]
    assert sorted(f.name for f in (filled / "ABC").iterdir()) == ["2023.parquet", "2024.parquet"]
    assert cache.cached_days(filled, "ABC") == [*DAYS, dt.date(2024, 1, 4)]  # the empty day too
    assert cache.is_cached(filled, "ABC", dt.date(2024, 1, 4))
    assert not cache.is_cached(filled, "ABC", dt.date(2024, 1, 5))
    assert load_bars(filled, "ABC").equals(before)
    meta = pq.ParquetFile(filled / "ABC" / "2024.parquet").metadata
    assert meta.num_row_groups == 1 and meta.num_rows == 780
    assert cache.compact(filled, "ABC") == []  # nothing new


def test_new_days_merge_into_the_year_and_a_redownload_wins(filled: Path) -> None:
    cache.compact(filled, "ABC")
    cache.write_day(filled, "ABC", dt.date(2024, 1, 5), _day(dt.date(2024, 1, 5)))
    cache.write_day(filled, "ABC", dt.date(2024, 1, 3), _day(dt.date(2024, 1, 3), price=11.0))  # again
    assert len(load_bars(filled, "ABC")) == 5 * 390  # day files and year files read together
    cache.compact(filled, "ABC")
    bars = load_bars(filled, "ABC", start=dt.date(2024, 1, 3), end=dt.date(2024, 1, 3))
    assert len(bars) == 390 and (bars["close"] == 11.0).all()
    assert cache.cached_days(filled, "ABC")[-1] == dt.date(2024, 1, 5)


def test_the_dataset_reads_only_the_requested_dates(filled: Path) -> None:
    cache.compact(filled, "ABC")
    one = cache.read_symbol(filled / "ABC", dt.date(2023, 12, 29), dt.date(2024, 1, 2))
    days = sorted(set(pd.DatetimeIndex(one["timestamp"]).tz_convert("America/New_York").date))
    assert days == [dt.date(2023, 12, 29), dt.date(2024, 1, 2)]
    assert len(cache.read_symbol(filled / "ABC", dt.date(2025, 1, 1), None)) == 0


def test_an_interrupted_compaction_loses_nothing(filled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = load_bars(filled, "ABC")
    monkeypatch.setattr(
        Path, "unlink", lambda self, missing_ok=False: (_ for _ in ()).throw(OSError("killed"))
    )
    with pytest.raises(OSError):
        cache.compact(filled, "ABC")  # the year file is in place, its day files still there
    monkeypatch.undo()
    assert (filled / "ABC" / "2023.parquet").is_file() and (filled / "ABC" / "2023-12-28.parquet").is_file()
    assert load_bars(filled, "ABC").equals(before)  # the same bars twice: read once
    cache.compact(filled, "ABC")
    assert load_bars(filled, "ABC").equals(before)
