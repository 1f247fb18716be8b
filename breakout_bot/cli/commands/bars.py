"""`breakout-bot bars`: download one-minute bars into the local Parquet cache (resumable).

One file per symbol per trading day (``<cache>/<SYMBOL>/<YYYY-MM-DD>.parquet``, regular session
only). Days already cached are skipped, days whose session has not closed yet are not cached (they
would be incomplete), every request goes through the rate limiter, one progress line per day.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import BrokerAuthError, BrokerError, BrokerNotFound, BrokerRejected, ConfigError, UserError
from ...market.cache import cache_path, write_day
from ..args import add_connection_arguments, add_symbol_argument, settings_from_args

if TYPE_CHECKING:
    from ...broker.alpaca.broker import AlpacaBroker

DEFAULT_CACHE = Path("data/cache")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def configure(parser: argparse.ArgumentParser) -> None:
    add_symbol_argument(parser, required=True)
    parser.add_argument(
        "--start", type=_date, required=True, metavar="YYYY-MM-DD", help="first day (inclusive)"
    )
    parser.add_argument("--end", type=_date, required=True, metavar="YYYY-MM-DD", help="last day (inclusive)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        metavar="DIR",
        help=f"cache folder (default {DEFAULT_CACHE}); files are DIR/SYMBOL/YYYY-MM-DD.parquet",
    )
    add_connection_arguments(parser)


def run(args: argparse.Namespace) -> int:
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
        return _download(broker, settings.symbols, args.start, args.end, cache_dir, settings.feed)
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


def _download(
    broker: AlpacaBroker, symbols: tuple[str, ...], start: dt.date, end: dt.date, cache_dir: Path, feed: str
) -> int:
    sessions = broker.get_sessions(start, end)
    now = broker.get_clock().timestamp
    if not sessions:
        print(f"no trading days between {start} and {end}")
        return 0
    fetched = skipped = 0
    for symbol in symbols:
        for session in sessions:
            day = session.date
            path = cache_path(cache_dir, symbol, day)
            if path.exists():
                print(f"{symbol} {day}: cached, skipped ({path})")
                skipped += 1
                continue
            if session.close > now:
                print(f"{symbol} {day}: session not closed yet, not cached")
                continue
            before = broker.requests_sent
            t0 = time.monotonic()
            try:
                records = broker.market_data.bar_records(symbol, session.open, session.close, feed=feed)
            except BrokerNotFound as exc:
                raise UserError(f"{symbol}: no such symbol at the data API ({exc})", exit_code=1) from None
            rows = [r for r in records if session.open <= _bar_start(r) < session.close]
            write_day(cache_dir, symbol, day, rows)
            fetched += 1
            note = "" if rows else " (the feed has no bars for this day)"
            print(
                f"{symbol} {day}: {len(rows)} bars, {broker.requests_sent - before} request(s), "
                f"{time.monotonic() - t0:.1f}s -> {path}{note}"
            )
    print(f"done: {fetched} day(s) downloaded, {skipped} already cached, feed {feed}, cache {cache_dir}")
    return 0


def _bar_start(record: dict[str, object]) -> dt.datetime:
    from ...broker.timestamps import parse_time

    return parse_time(record["t"])
