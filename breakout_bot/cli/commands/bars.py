"""`breakout-bot bars`: download one-minute bars into the local Parquet cache (resumable).

One file per symbol per trading day (``<cache>/<SYMBOL>/<YYYY-MM-DD>.parquet``, regular session
only). Days already cached are skipped, days whose session has not closed yet are not cached (they
would be incomplete), every request goes through the rate limiter, one progress line per day.
Consecutive missing days are asked for together (up to `BATCH_SESSIONS` sessions, one page of bars:
~25x fewer requests for a universe than a request per day), and written day by day.

`--universe FILE` adds the symbols of a file (one a line); `--compact` then merges each symbol's day
files into one Parquet file per year (market/cache.py); `--compact` alone (no dates, no keys)
compacts what the cache holds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import BrokerAuthError, BrokerError, BrokerNotFound, BrokerRejected, ConfigError, UserError
from ...market.cache import cache_path, cached_days, compact, write_day
from ...market.universe import read_universe_file
from ..args import add_connection_arguments, add_symbol_argument, settings_from_args

if TYPE_CHECKING:
    from ...broker.alpaca.broker import AlpacaBroker
    from ...core.model import Session

DEFAULT_CACHE = Path("data/cache")
BATCH_SESSIONS = 20  # 7,800 bars at most: one page (Alpaca's limit is 10,000 bars per page)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def configure(parser: argparse.ArgumentParser) -> None:
    add_symbol_argument(parser)
    parser.add_argument(
        "--universe",
        type=Path,
        metavar="FILE",
        help="also the symbols listed in FILE (one a line; # comments)",
    )
    parser.add_argument("--start", type=_date, metavar="YYYY-MM-DD", help="first day (inclusive)")
    parser.add_argument("--end", type=_date, metavar="YYYY-MM-DD", help="last day (inclusive)")
    parser.add_argument(
        "--compact",
        action="store_true",
        help="then merge each symbol's day files into one Parquet file per year (alone: compact the cache)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        metavar="DIR",
        help=f"cache folder (default {DEFAULT_CACHE}); files are DIR/SYMBOL/YYYY-MM-DD.parquet",
    )
    add_connection_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.universe is not None:
        args.symbols = [*(args.symbols or []), ",".join(read_universe_file(args.universe))]
    downloading = args.start is not None or args.end is not None
    if args.compact and not downloading:
        return _compact(args.cache_dir, _symbols_in(args))
    if args.start is None or args.end is None:
        raise ConfigError("--start and --end are required (or --compact alone, to compact the cache)")
    settings = settings_from_args(args)
    if args.end < args.start:
        raise ConfigError(f"--end {args.end} is before --start {args.start}")
    if not settings.has_keys:
        raise ConfigError(
            "bars needs Alpaca API keys (APCA_API_KEY_ID / APCA_API_SECRET_KEY, or .env): market data "
            "comes from Alpaca. Without keys, `breakout-bot backtest` can use synthetic bars."
        )
    if not settings.symbols:
        raise ConfigError("--symbol is required")
    from ...broker.alpaca.factory import broker_from_settings

    broker = broker_from_settings(settings)
    cache_dir: Path = args.cache_dir
    try:
        code = download_missing(broker, settings.symbols, args.start, args.end, cache_dir, settings.feed)
        return _compact(cache_dir, list(settings.symbols)) if args.compact else code
    except BrokerAuthError:
        raise  # the CLI says which keys to check
    except BrokerRejected as exc:
        hint = " (free plans: use --feed iex for recent data)" if settings.feed == "sip" else ""
        raise UserError(f"the data API refused the request: {exc}{hint}", exit_code=1) from None
    except BrokerError as exc:
        raise BrokerError(
            f"download interrupted: {exc}; run the same command again to resume", exit_code=4
        ) from None
    finally:
        broker.close()


def download_missing(
    broker: AlpacaBroker, symbols: tuple[str, ...], start: dt.date, end: dt.date, cache_dir: Path, feed: str
) -> int:
    sessions = broker.get_sessions(start, end)
    now = broker.get_clock().timestamp
    if not sessions:
        print(f"no trading days between {start} and {end}")
        return 0
    fetched = skipped = 0
    for symbol in symbols:
        cached = set(cached_days(cache_dir, symbol))
        missing = []
        for session in sessions:
            day = session.date
            if day in cached:
                print(f"{symbol} {day}: cached, skipped ({cache_path(cache_dir, symbol, day).parent})")
                skipped += 1
            elif session.close > now:
                print(f"{symbol} {day}: session not closed yet, not cached")
            else:
                missing.append(session)
        for batch in _runs(missing, sessions):
            before = broker.requests_sent
            t0 = time.monotonic()
            try:
                records = broker.market_data.bar_records(symbol, batch[0].open, batch[-1].close, feed=feed)
            except BrokerNotFound as exc:
                raise UserError(f"{symbol}: no such symbol at the data API ({exc})", exit_code=1) from None
            requests, seconds = broker.requests_sent - before, time.monotonic() - t0
            for session in batch:
                rows = [r for r in records if session.open <= _bar_start(r) < session.close]
                path = write_day(cache_dir, symbol, session.date, rows)
                fetched += 1
                note = "" if rows else " (the feed has no bars for this day)"
                print(
                    f"{symbol} {session.date}: {len(rows)} bars, {requests} request(s) for "
                    f"{len(batch)} day(s), {seconds:.1f}s -> {path}{note}"
                )
    print(f"done: {fetched} day(s) downloaded, {skipped} already cached, feed {feed}, cache {cache_dir}")
    return 0


def _runs(missing: list[Session], sessions: list[Session]) -> list[list[Session]]:
    """The missing sessions in runs of consecutive sessions (no cached day inside a run), at most
    BATCH_SESSIONS each: one request (one page) per run."""
    position = {s.date: i for i, s in enumerate(sessions)}
    runs: list[list[Session]] = []
    for session in missing:
        if (
            runs
            and position[session.date] == position[runs[-1][-1].date] + 1
            and len(runs[-1]) < BATCH_SESSIONS
        ):
            runs[-1].append(session)
        else:
            runs.append([session])
    return runs


def _symbols_in(args: argparse.Namespace) -> list[str]:
    named = [s.strip().upper() for item in (args.symbols or []) for s in item.split(",") if s.strip()]
    if named:
        return named
    root: Path = args.cache_dir
    return sorted(d.name for d in root.iterdir() if d.is_dir()) if root.is_dir() else []


def _compact(cache_dir: Path, symbols: list[str]) -> int:
    if not symbols:
        raise ConfigError(f"--compact: {cache_dir} holds no symbol folders")
    for symbol in symbols:
        written = compact(cache_dir, symbol)
        years = ", ".join(p.stem for p in written) or "nothing new"
        print(f"{symbol}: compacted {years} -> {cache_dir / symbol.upper()}")
    return 0


def _bar_start(record: dict[str, object]) -> dt.datetime:
    from ...broker.timestamps import parse_time

    return parse_time(record["t"])
