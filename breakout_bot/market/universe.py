"""Many symbols' bars: a universe file, and the bars of each symbol from one place.

`--data` for several symbols is a file with a `symbol` column (read once, split by symbol), a folder
of per-symbol files (`AAPL.csv`, `msft.parquet`: the file's name is the symbol, any case), or a
`breakout-bot bars` cache (`<dir>/<SYMBOL>/...`, read by market/cache.py). Each symbol's bars are
what `load_bars` would give for that symbol alone.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import re
from collections.abc import Iterator, Sequence

import pandas as pd

from ..errors import DataError
from .bars import load_bars, normalize_bars, read_table, restrict_dates, symbol_column

_TICKER = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,14}$")
_EXTENSIONS = (".parquet", ".pq", ".csv")


def parse_symbols(items: Sequence[str], flag: str) -> list[str]:
    """Tickers from flag values (each may hold several, comma-separated): upper case, in the order
    given, duplicates dropped; DataError naming the flag for anything that is not a ticker."""
    out: dict[str, None] = {}
    for item in items:
        for part in item.split(","):
            symbol = part.strip().upper()
            if not symbol:
                continue
            if not _TICKER.match(symbol):
                raise DataError(f"{flag}: not a ticker: {part.strip()!r}")
            out[symbol] = None
    return list(out)


def read_universe_file(path: pathlib.Path) -> list[str]:
    """One symbol a line (blank lines and `#` comments ignored; a line may also list several, comma-
    separated). DataError with the line number for a bad one."""
    try:
        lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"--universe: no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"--universe: cannot read {path}: {exc}") from None
    symbols: dict[str, None] = {}
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            for symbol in parse_symbols([text], "--universe"):
                symbols[symbol] = None
        except DataError as exc:
            raise DataError(f"{exc} (line {number} of {path})") from None
    if not symbols:
        raise DataError(f"--universe: {path} lists no symbols")
    return list(symbols)


def load_universe(
    path: str | pathlib.Path,
    symbols: Sequence[str],
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> Iterator[tuple[str, pd.DataFrame]]:
    """(symbol, bars) for each of `symbols`, in order, from `path` (see the module docstring).
    DataError (one line) when a symbol has no bars there."""
    root = pathlib.Path(path)
    if not root.exists():
        raise DataError(f"--data: no such file or directory: {root}")
    if root.is_file():
        raw = read_table(root)
        if symbol_column(raw) is None:
            raise DataError(
                f"--data: {root.name} has no symbol column: several symbols need one (or a folder of "
                "per-symbol files, or a `breakout-bot bars` cache)"
            )
        for symbol in symbols:
            yield symbol, restrict_dates(normalize_bars(raw, root.name, symbol), root.name, start, end)
        return
    for symbol in symbols:
        yield symbol, load_bars(_symbol_source(root, symbol), symbol, start=start, end=end)


def _symbol_source(root: pathlib.Path, symbol: str) -> pathlib.Path:
    if (root / symbol).is_dir():
        return root  # a bars cache: load_bars finds <root>/<SYMBOL>
    files = {f.name.lower(): f for f in root.iterdir() if f.is_file()}
    for ext in _EXTENSIONS:
        found = files.get(f"{symbol.lower()}{ext}")
        if found is not None:
            return found
    raise DataError(
        f"--data: no bars for {symbol} in {root} (expected {symbol}/, {symbol}.csv or {symbol}.parquet)"
    )
