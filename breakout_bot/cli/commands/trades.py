"""`breakout-bot trades`: the fill journal as round-trip trades with P&L per trade, day and symbol."""

from __future__ import annotations

import argparse
import datetime as dt
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ...errors import ConfigError
from ...journal import Journal
from ...roundtrips import NEW_YORK, FillLike, RoundTrip, round_trips
from ..args import parse_date_flag


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file", type=Path, default=Path("past_trades.json"), help="journal (default past_trades.json)"
    )
    parser.add_argument(
        "--since", metavar="YYYY-MM-DD", help="only trades opened on or after this date (New York)"
    )
    parser.add_argument("--symbol", help="only this symbol")
    parser.add_argument(
        "--summary", action="store_true", help="P&L per day and per symbol instead of each trade"
    )


def _fills(journal: Journal) -> list[FillLike]:
    return [
        FillLike(
            symbol=r.symbol,
            side=r.side,
            qty=Decimal(r.qty),
            price=Decimal(r.price),
            timestamp=dt.datetime.fromisoformat(r.timestamp.replace("Z", "+00:00")),
        )
        for r in journal.records()
    ]


def run(args: argparse.Namespace) -> int:
    if not args.file.exists():
        raise ConfigError(f"--file: no journal at {args.file}")
    since = parse_date_flag(args.since, "--since") if args.since else None
    journal = Journal(args.file)
    journal.load()
    trips = round_trips(_fills(journal))
    if args.symbol:
        trips = [t for t in trips if t.symbol == args.symbol.upper()]
    if since is not None:
        trips = [t for t in trips if t.day >= since]
    console = Console()
    if not trips:
        console.print(f"no trades in {args.file}")
        return 0
    console.print(_summary_tables(trips) if args.summary else _trade_table(trips))
    total = sum((t.realized for t in trips), Decimal(0))
    closed = [t for t in trips if t.closed is not None]
    wins = sum(1 for t in closed if t.realized > 0)
    console.print(
        f"{len(trips)} trades ({len(trips) - len(closed)} open), {wins} winners, realized P&L {total:+.2f}",
        highlight=False,
    )
    return 0


def _trade_table(trips: list[RoundTrip]) -> Table:
    table = Table(title="round-trip trades")
    for column in ("day", "symbol", "side", "qty", "entry", "exit", "opened", "closed", "P&L"):
        table.add_column(column, justify="right" if column in ("qty", "entry", "exit", "P&L") else "left")
    day_totals: dict[dt.date, Decimal] = defaultdict(Decimal)
    for trip in trips:
        day_totals[trip.day] += trip.realized
        exit_price = trip.exit_price
        table.add_row(
            str(trip.day),
            trip.symbol,
            trip.direction,
            f"{trip.qty:f}",
            f"{trip.entry_price:.4f}",
            f"{exit_price:.4f}" if exit_price is not None else "open",
            f"{trip.opened.astimezone(NEW_YORK):%H:%M:%S}",
            f"{trip.closed.astimezone(NEW_YORK):%H:%M:%S}" if trip.closed else "-",
            f"{trip.realized:+.2f}",
        )
    for day, total in sorted(day_totals.items()):
        table.add_row(str(day), "[bold]day total[/]", "", "", "", "", "", "", f"[bold]{total:+.2f}[/]")
    return table


def _summary_tables(trips: list[RoundTrip]) -> Table:
    table = Table(title="P&L summary")
    for column in ("group", "key", "trades", "winners", "P&L"):
        table.add_column(column, justify="right" if column in ("trades", "winners", "P&L") else "left")
    for label, key in (("day", lambda t: str(t.day)), ("symbol", lambda t: t.symbol)):
        groups: dict[str, list[RoundTrip]] = defaultdict(list)
        for trip in trips:
            groups[key(trip)].append(trip)
        for name, members in sorted(groups.items()):
            pnl = sum((t.realized for t in members), Decimal(0))
            winners = sum(1 for t in members if t.realized > 0)
            table.add_row(label, name, str(len(members)), str(winners), f"{pnl:+.2f}")
    return table
