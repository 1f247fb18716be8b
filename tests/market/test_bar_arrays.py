"""`load_bar_arrays` gives exactly `load_bars`' bars, and reads a plain Parquet file without pandas."""

from __future__ import annotations

import datetime as dt
import pathlib
import subprocess
import sys
import tempfile
from unittest import mock

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from breakout_bot.errors import DataError
from breakout_bot.market import bars as bars_module
from breakout_bot.market.bar_arrays import BarArrays, load_bar_arrays
from breakout_bot.market.bars import load_bars

# Around a DST change (2024-03-10) and a weekend, with minutes before the open and after the close.
_BASE = int(pd.Timestamp("2024-03-08 09:25", tz="America/New_York").timestamp())
_SPAN_MINUTES = 4 * 24 * 60
_NAMES = {
    "time": ["timestamp", "Datetime", "t", " TIME_STAMP "],
    "open": ["open", "Open", "o"],
    "high": ["high", "HIGH", "h"],
    "low": ["low", "l"],
    "close": ["close", "c"],
    "volume": ["volume", "Vol", "v", None],
}


def same_bars(got: BarArrays, want: BarArrays) -> None:
    assert np.array_equal(got.ns, want.ns)
    assert got.ns.dtype == want.ns.dtype == np.int64
    for name in ("o", "h", "lo", "c", "v"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype == np.float64
        assert np.array_equal(a, b, equal_nan=True), name
    assert (got.dropped, got.source) == (want.dropped, want.source)


def outcome(load: object) -> BarArrays | str:
    try:
        result = load()  # type: ignore[operator]
    except DataError as exc:
        return f"DataError: {exc}"
    assert isinstance(result, BarArrays)
    return result


def compare(
    path: pathlib.Path, *, fast: bool, start: dt.date | None = None, end: dt.date | None = None
) -> None:
    """The arrays load equals the frame load flattened; with `fast`, without calling `load_bars`."""
    want = outcome(lambda: BarArrays.of_frame(load_bars(path, start=start, end=end)))
    refuse = mock.patch.object(bars_module, "load_bars", side_effect=AssertionError("took the pandas path"))
    with refuse if fast else mock.patch.object(bars_module, "load_bars", wraps=bars_module.load_bars) as spy:
        got = outcome(lambda: load_bar_arrays(path, start=start, end=end))
    if not fast:
        assert spy.called, "expected the general path"
    if isinstance(want, str) or isinstance(got, str):
        assert got == want
    else:
        same_bars(got, want)


price = st.one_of(
    st.floats(min_value=0.5, max_value=500, allow_nan=False).map(lambda x: round(x, 6)),
    st.sampled_from([float("nan"), 0.0, -1.0, 10.00004, 10.00005]),
)
row = st.tuples(
    st.one_of(st.integers(0, _SPAN_MINUTES), st.none()),  # minute from _BASE; None: no time
    price,
    price,
    price,
    price,
    st.one_of(st.floats(0, 1e6, allow_nan=False), st.just(float("nan"))),
)


def _time_column(minutes: list[int | None], encoding: str) -> pa.Array:
    seconds = [None if m is None else _BASE + 60 * m for m in minutes]
    if encoding == "epoch_s":
        return pa.array([float("nan") if s is None else float(s) for s in seconds], pa.float64())
    if encoding == "epoch_ms":
        return pa.array([None if s is None else s * 1000 for s in seconds], pa.int64())
    unit, zone = encoding.split("@")
    per = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    return pa.array([None if s is None else s * per for s in seconds], pa.int64()).cast(
        pa.timestamp(unit, tz=zone)
    )


@settings(max_examples=120)
@given(
    rows=st.lists(row, min_size=1, max_size=40),
    encoding=st.sampled_from(["epoch_s", "epoch_ms", "s@UTC", "ms@UTC", "us@America/New_York", "ns@America/New_York"]),
    names=st.fixed_dictionaries({k: st.sampled_from(v) for k, v in _NAMES.items()}),
    extra=st.booleans(),
    kinds=st.tuples(st.sampled_from(["float64", "float32"]), st.sampled_from(["float64", "int64", "uint32", "float16"])),
    window=st.sampled_from([(None, None), (dt.date(2024, 3, 10), None), (None, dt.date(2024, 3, 9)),
                            (dt.date(2024, 3, 11), dt.date(2024, 3, 11)), (dt.date(2024, 3, 20), None)]),
)  # fmt: skip
@example(
    rows=[
        (5, 10.0, 10.5, 9.5, 10.2, 100.0),
        (5, 10.0, 10.6, 9.5, 10.3, 50.0),
        (1, 10.0, 10.5, 9.5, 10.2, 1.0),
    ],
    encoding="us@America/New_York",
    names={
        "time": "timestamp",
        "open": "open",
        "high": "high",
        "low": "low",
        "close": "close",
        "volume": None,
    },
    extra=False,
    kinds=("float64", "float64"),
    window=(None, None),
).via("duplicates (the last row wins) out of order, no volume column")
def test_a_plain_parquet_file_gives_load_bars_bars_without_pandas(
    rows: list[tuple[int | None, float, float, float, float, float]],
    encoding: str,
    names: dict[str, str | None],
    extra: bool,
    kinds: tuple[str, str],
    window: tuple[dt.date | None, dt.date | None],
) -> None:
    columns: dict[str, pa.Array] = {str(names["time"]): _time_column([r[0] for r in rows], encoding)}
    for i, col in enumerate(("open", "high", "low", "close", "volume"), start=1):
        name = names[col]
        if name is None:
            continue
        values = [r[i] for r in rows]
        kind = kinds[1] if col == "volume" else kinds[0]
        if kind.startswith(("int", "uint")):  # whole numbers; NaN is a null there
            columns[name] = pa.array([None if v != v else int(v) for v in values], getattr(pa, kind)())
        else:  # prices in float32 lose digits: both loaders read the same file
            columns[name] = pa.array(values, pa.float64()).cast(getattr(pa, kind)(), safe=False)
    if extra:
        columns["vwap"] = pa.array([1.0] * len(rows))  # ignored, like any unknown column
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "bars.parquet"
        pq.write_table(pa.table(columns), path)
        compare(path, fast=True, start=window[0], end=window[1])


def test_nulls_in_a_parquet_file_are_missing_values(tmp_path: pathlib.Path) -> None:
    stamps = pa.array([_BASE, None, _BASE + 60, _BASE + 120], pa.int64()).cast(pa.timestamp("s", tz="UTC"))
    table = pa.table(
        {
            "timestamp": stamps,
            "open": pa.array([10.0, 10.0, None, 10.0]),
            "high": pa.array([11.0, 11.0, 11.0, 11.0]),
            "low": pa.array([9.0, 9.0, 9.0, 9.0]),
            "close": pa.array([10.0, 10.0, 10.0, 10.0]),
            "volume": pa.array([1, None, 3, None], pa.int64()),  # integers: read as float64, null -> 0
        }
    )
    pq.write_table(table, tmp_path / "x.parquet", row_group_size=3)  # nulls across two batches
    compare(tmp_path / "x.parquet", fast=True)
    got = load_bar_arrays(tmp_path / "x.parquet")
    assert got.dropped == 2 and got.v.tolist() == [1.0, 0.0]


@pytest.mark.parametrize("layout", ["naive times", "symbol column", "csv", "date and time", "no close"])
def test_other_layouts_take_load_bars_path_with_the_same_result(tmp_path: pathlib.Path, layout: str) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-03-08 09:30", periods=5, freq="min"),
            "open": 10.0,
            "high": 11.0,
            "low": 9.0,
            "close": [10.0, 10.5, 9.5, 10.2, 10.1],
        }
    )
    path = tmp_path / "bars.parquet"
    if layout == "symbol column":
        frame["timestamp"] = frame["timestamp"].dt.tz_localize("America/New_York")
        frame["symbol"] = "AAPL"
    elif layout == "csv":
        path = tmp_path / "bars.csv"
    elif layout == "date and time":
        frame["date"] = frame.pop("timestamp").dt.strftime("%Y-%m-%d")
        frame["time"] = "09:30"
    elif layout == "no close":
        frame = frame.drop(columns=["close"])
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    compare(path, fast=False)


def test_the_arrays_frame_is_load_bars_frame(tmp_path: pathlib.Path) -> None:
    index = pd.date_range("2024-03-08 09:30", periods=3, freq="min", tz="America/New_York", name="timestamp")
    frame = pd.DataFrame(
        {
            "open": [1.0, 2, 3],
            "high": [2.0, 3, 4],
            "low": [0.5, 1, 2],
            "close": [1.5, 2, 3],
            "volume": [1.0, 2, 3],
        },
        index=index,
    )
    frame.to_parquet(tmp_path / "x.parquet")  # the index saved with the file: read back as a column
    arrays = load_bar_arrays(tmp_path / "x.parquet")
    want = load_bars(tmp_path / "x.parquet")
    pd.testing.assert_frame_equal(arrays.frame(), want, check_index_type=False)
    assert arrays.frame().attrs == want.attrs


def test_the_one_symbol_backtest_of_a_parquet_file_never_imports_pandas(tmp_path: pathlib.Path) -> None:
    """What the fast path is for: `backtest --data FILE.parquet` runs with pandas never imported (nor
    pyarrow.compute)."""
    index = pd.date_range("2024-03-08 09:30", periods=390, freq="min", tz="America/New_York")
    closes = 100 + np.sin(np.arange(390) / 7.0)
    pd.DataFrame(
        {"timestamp": index, "open": closes, "high": closes + 0.2, "low": closes - 0.2, "close": closes}
    ).to_parquet(tmp_path / "bars.parquet", index=False)
    script = (
        "import sys\n"
        "from breakout_bot.cli.main import main\n"
        f"code = main(['backtest', '--symbol', 'X', '--data', {str(tmp_path / 'bars.parquet')!r}])\n"
        "print('imported:', 'pandas' in sys.modules, 'pyarrow.compute' in sys.modules, 'exit', code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "390 bars, 1 session\n" in done.stdout
    assert done.stdout.strip().endswith("imported: False False exit 0"), done.stdout[-400:]
