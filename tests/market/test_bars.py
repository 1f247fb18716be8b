"""Bar sources: the seeded synthetic generator, and the bar loader as the simulator uses it."""

from __future__ import annotations

import datetime as dt
import pathlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shared_data import shared_minute_dir

from breakout_bot.errors import DataError
from breakout_bot.market.bars import FileSource, load_bars, normalize_bars, regular_session
from breakout_bot.market.calendar import xnys
from breakout_bot.market.synthetic import synthetic_day


def test_synthetic_is_deterministic_and_consistent() -> None:
    s = xnys().session(dt.date(2024, 3, 4))
    assert s is not None
    a, b, c = synthetic_day(7, "AAPL", s), synthetic_day(7, "AAPL", s), synthetic_day(8, "AAPL", s)
    assert len(a) == 390
    assert np.array_equal(a.c, b.c) and np.array_equal(a.v, b.v)
    assert not np.array_equal(a.c, c.c)
    assert (a.h >= np.maximum(a.o, a.c)).all() and (a.low <= np.minimum(a.o, a.c)).all()
    assert np.array_equal(np.round(a.c, 2), a.c) and a.v.dtype == np.int64 and (a.v > 0).all()
    assert a.t[0] == s.open and a.t[-1] == s.close - 60
    half = xnys().session(dt.date(2015, 12, 24))
    assert half is not None and len(synthetic_day(7, "AAPL", half)) == 210
    # The strategy's 10-bar box is broken both ways during a day.
    ups = sum(a.c[i] > a.h[i - 10 : i].max() for i in range(10, 390))
    downs = sum(a.c[i] < a.low[i - 10 : i].min() for i in range(10, 390))
    assert ups >= 3 and downs >= 3


def _write(path: pathlib.Path, header: str, rows: list[str]) -> pathlib.Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_csv_naive_new_york_and_regular_session(tmp_path: pathlib.Path) -> None:
    p = _write(
        tmp_path / "x.csv",
        "Datetime,Open,High,Low,Close,Volume",
        [
            "2024-03-04 09:29:00,1,1,1,1,10",  # pre-market: dropped
            "2024-03-04 09:30:00,10,11,9,10.5,100",
            "2024-03-04 09:31:00,10.5,10.6,10.4,10.45,50",
            "2024-03-04 09:31:00,10.5,10.7,10.4,10.55,60",  # duplicate: last wins
            "2024-03-04 16:00:00,1,1,1,1,10",  # after the close: dropped
        ],
    )
    df = regular_session(load_bars(p))
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert str(df.index.tz) == "America/New_York"
    assert df.index[0] == pd.Timestamp("2024-03-04 09:30", tz="America/New_York")
    assert len(df) == 2 and df["close"].iloc[-1] == 10.55
    s = xnys().session(dt.date(2024, 3, 4))
    assert s is not None
    day = FileSource(p, ("AAPL",)).day("AAPL", s)  # what the simulator serves: whole-share volumes
    assert day.v.dtype == np.int64 and day.v.tolist() == [100, 60] and day.c.tolist() == [10.5, 10.55]


def test_csv_aliases_aware_times_and_symbol_column(tmp_path: pathlib.Path) -> None:
    p = _write(
        tmp_path / "y.csv",
        "symbol,t,o,h,l,c,v",
        [
            "AAPL,2024-03-04T14:30:00Z,10,11,9,10.5,100",
            "MSFT,2024-03-04T14:30:00Z,20,21,19,20.5,100",
            "AAPL,2024-03-04T14:31:00+00:00,10.5,10.6,10.4,10.45,50",
        ],
    )
    df = regular_session(load_bars(p, symbol="AAPL"))
    assert len(df) == 2 and df.index[0] == pd.Timestamp("2024-03-04 09:30", tz="America/New_York")
    with pytest.raises(ValueError):
        load_bars(p)  # two symbols, none chosen
    p2 = _write(
        tmp_path / "z.csv",
        "Date,Time,Open,High,Low,Close,Volume",
        ["2015-12-24,12:59,1,1,1,1,1", "2015-12-24,13:00,1,1,1,1,1"],
    )  # early close 13:00
    assert len(regular_session(load_bars(p2))) == 1


def test_parquet_and_file_source(tmp_path: pathlib.Path) -> None:
    idx = pd.date_range("2024-03-04 09:30", periods=5, freq="1min", tz="America/New_York")
    frame = pd.DataFrame({"timestamp": idx, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 7})
    p = tmp_path / "b.parquet"
    frame.to_parquet(p)
    df = load_bars(p)
    assert len(df) == 5
    src = FileSource(p, ("AAPL",))
    assert src.first_session_date() == dt.date(2024, 3, 4)
    s = xnys().session(dt.date(2024, 3, 4))
    assert s is not None and len(src.day("AAPL", s)) == 5


def test_missing_columns_raise(tmp_path: pathlib.Path) -> None:
    p = _write(tmp_path / "bad.csv", "when,open,high,low,close", ["2024-03-04 09:30,1,1,1,1"])
    with pytest.raises(ValueError):
        load_bars(p)


SHARED = shared_minute_dir()


@pytest.mark.skipif(SHARED is None, reason="shared sample data not present")
def test_shared_real_files() -> None:
    assert SHARED is not None
    goog = regular_session(load_bars(SHARED / "lean_goog_1min.csv"))
    per_day = goog.groupby(goog.index.date).size()
    assert per_day[dt.date(2015, 12, 24)] == 210  # the half day stops at 13:00
    assert per_day[dt.date(2015, 12, 23)] == 390
    yf = regular_session(
        load_bars(SHARED / "spy_1min_2025-07_yfinance.csv")
    )  # -04:00 offsets, extra columns, gaps
    assert yf.index[0] == pd.Timestamp("2025-07-08 09:30", tz="America/New_York")
    assert yf.groupby(yf.index.date).size().tolist() == [388, 390, 383, 389, 390]


@settings(max_examples=50)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 30),  # minute of the session (repeats: duplicate timestamps)
            st.floats(0.5, 200, allow_nan=False),
            st.floats(0.0, 2.0),
            st.sampled_from([None, "nan", "neg", "hl"]),  # an invalid row now and then
        ),
        min_size=1,
        max_size=40,
    )
)
def test_normalize_keeps_the_last_of_each_minute_sorted_and_drops_invalid_rows(rows: list) -> None:
    """The loader's fast path (one float block, no sort or dedup pass when the file is already in
    order) gives what the plain pandas recipe gives: valid rows only, the last row of each timestamp,
    in time order, prices rounded to 4 decimals."""
    open_ = pd.Timestamp("2024-03-04 09:30", tz="America/New_York")
    records = []
    for minute, price, spread, bad in rows:
        o, h, lo, c = price, price + spread, price - spread / 2, price + spread / 3
        if bad == "nan":
            c = float("nan")
        elif bad == "neg":
            lo = -1.0
        elif bad == "hl":
            h, lo = lo - 1, h + 1
        records.append((open_ + pd.Timedelta(minutes=minute), o, h, lo, c, 10.0))
    raw = pd.DataFrame(records, columns=["timestamp", "open", "high", "low", "close", "volume"])
    expected = raw.set_index("timestamp")
    for col in ("open", "high", "low", "close"):
        expected[col] = expected[col].round(4)
    ok = (
        expected[["open", "high", "low", "close"]].notna().all(axis=1)
        & (expected["low"] > 0)
        & (expected["high"] >= expected["low"])
        & (expected[["open", "close"]].min(axis=1) >= expected["low"])
        & (expected[["open", "close"]].max(axis=1) <= expected["high"])
    )
    expected = expected[ok]
    expected = expected[~expected.index.duplicated(keep="last")].sort_index()
    if not len(expected):
        with pytest.raises(DataError):
            normalize_bars(raw, "rows")
        return
    got = normalize_bars(raw, "rows")
    assert got.attrs["dropped_rows"] == int((~ok).sum())
    assert list(got.columns) == ["open", "high", "low", "close", "volume"]
    assert got.index.equals(expected.index.tz_convert("America/New_York"))
    assert np.array_equal(got.to_numpy(), expected.to_numpy())


@pytest.mark.parametrize("zone", ["America/New_York", "UTC", None])
def test_parquet_files_stream_into_the_frame_pandas_reads(tmp_path: pathlib.Path, zone: str | None) -> None:
    """Parquet bars are read batch by batch into arrays (memory); the frame is the one pandas reads:
    any time zone or none, integer and null prices, extra columns left out, a saved time index."""
    stamps = pd.date_range("2024-03-04 09:30", periods=80_000, freq="min", tz="America/New_York")  # 2 batches
    stamps = stamps if zone is None else stamps.tz_convert(zone)
    if zone is None:
        stamps = stamps.tz_localize(None)
    rng = np.random.default_rng(1)
    close = np.round(100 + np.cumsum(rng.normal(0, 0.05, len(stamps))), 2)
    raw = pd.DataFrame(
        {
            "Timestamp": stamps,
            "open": close,
            "high": close + 0.1,
            "low": close - 0.1,
            "close": close,
            "volume": rng.integers(0, 1000, len(stamps)),
            "vwap": close,
            "note": "x",
        }
    )
    raw.loc[7, "close"] = np.nan  # a null price: the row is dropped
    path = tmp_path / "bars.parquet"
    raw.to_parquet(path, index=False, row_group_size=30_000)
    expected = normalize_bars(pd.read_parquet(path), "bars.parquet")
    got = load_bars(path)
    assert got.equals(expected) and got.attrs["dropped_rows"] == expected.attrs["dropped_rows"] == 1
    indexed = tmp_path / "indexed.parquet"
    raw.set_index("Timestamp").to_parquet(indexed)  # saved with its time index
    assert load_bars(indexed).equals(expected)
