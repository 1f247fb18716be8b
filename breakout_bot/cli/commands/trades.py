"""`breakout-bot trades`: the fill journal as round-trip trades with P&L per trade, day and symbol.

Read-only: the journal is read without a lock file and a corrupt one is reported, never moved
(journal.read_journal). Fills of different accounts never meet in one round trip: the records are
grouped by their mode and account (each simulated run has an account of its own), and each group is
reported apart. Simulated runs journal beside the configured journal, in `simulated/` (`--simulated`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from ...config.settings import simulated_path
from ...errors import ConfigError
from ...journal import FillRecord, read_journal
from ...live.status import money
from ...roundtrips import NEW_YORK, FillLike, RoundTrip, round_trips
from ..args import add_journal_arguments, journal_from_args, parse_date_flag, settings_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    add_journal_arguments(parser)
    parser.add_argument(
        "--since", metavar="YYYY-MM-DD", help="only trades opened on or after this date (New York)"
    )
    parser.add_argument("--symbol", help="only this symbol")
    parser.add_argument(
        "--summary", action="store_true", help="P&L per day and per symbol instead of each trade"
    )
    parser.add_argument(
        "--env-file", type=Path, metavar="PATH", help="read settings from PATH instead of ./.env"
    )


def _fill(r: FillRecord) -> FillLike:
    return FillLike(
        symbol=r.symbol,
        side=r.side,
        qty=Decimal(r.qty),
        price=Decimal(r.price),
        timestamp=r.filled_at,
    )


Group = tuple[str, str]  # (mode, account); ("", "") for records written before the tags existed


def groups(records: Iterable[FillRecord]) -> dict[Group, list[FillRecord]]:
    """Records by where they happened, in first-seen order: round trips never cross these lines."""
    out: dict[Group, list[FillRecord]] = {}
    for r in records:
        out.setdefault((r.mode or "", r.account or ""), []).append(r)
    return out


def group_title(group: Group, records: list[FillRecord]) -> str:
    mode, account = group
    if not mode and not account:
        return "fills without a mode or account (recorded by an earlier breakout-bot)"
    runs = sorted({r.run for r in records if r.run})
    run = f" · run {runs[0]}" if len(runs) == 1 else (f" · {len(runs)} runs" if runs else "")
    return f"{mode or 'unknown mode'} · account {account or 'unknown'}{run}"


def run(args: argparse.Namespace) -> int:
    since = parse_date_flag(args.since, "--since") if args.since else None
    explicit = args.journal is not None
    settings = settings_from_args(args, trading=False)
    path = journal_from_args(args, settings)
    console = Console(width=None if sys.stdout.isatty() else 200)  # a pipe: never cut a column
    if not path.exists():
        if explicit:
            raise ConfigError(f"--journal: no journal at {path}")
        hint = ""
        other = simulated_path(path)
        if not args.simulated and other.exists():
            hint = f"; simulated runs are in {other}: breakout-bot trades --simulated"
        console.print(f"no journal at {path} yet: no fills recorded{hint}", highlight=False, soft_wrap=True)
        return 0
    shown = 0
    for group, records in groups(read_journal(path)).items():
        trips = round_trips(_fill(r) for r in records)
        if args.symbol:
            trips = [t for t in trips if t.symbol == args.symbol.upper()]
        if since is not None:
            trips = [t for t in trips if t.day >= since]
        if not trips:
            continue
        if shown:
            console.print()
        shown += 1
        console.print(f"[bold]{group_title(group, records)}[/]", highlight=False, soft_wrap=True)
        console.print(_summary_tables(trips) if args.summary else _trade_table(trips))
        console.print(totals_line(trips), highlight=False, soft_wrap=True)
    if not shown:
        console.print(f"no trades in {path}", highlight=False, soft_wrap=True)
    return 0


def totals_line(trips: list[RoundTrip]) -> str:
    closed = [t for t in trips if t.closed is not None]
    wins = sum(1 for t in closed if t.realized > 0)
    losses = sum(1 for t in closed if t.realized < 0)
    total = sum((t.realized for t in trips), Decimal(0))
    still_open = len(trips) - len(closed)
    opened = f", {still_open} open" if still_open else ""
    return f"{_count(len(trips), 'trade')}{opened}: {wins} won, {losses} lost; realized P&L {money(total)}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def price(value: Decimal | None) -> str:
    """A fill price as it trades: cents from $1, hundredths of a cent below."""
    if value is None:
        return "open"
    return f"{value:,.2f}" if value >= 1 else f"{value:,.4f}"


def _trade_table(trips: list[RoundTrip]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("day", "symbol", "side", "qty", "entry", "exit", "opened", "closed", "P&L"):
        right = column in ("qty", "entry", "exit", "P&L")
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    by_day: dict[dt.date, list[RoundTrip]] = defaultdict(list)
    for trip in trips:
        by_day[trip.day].append(trip)
    for day, members in sorted(by_day.items()):
        for trip in members:
            table.add_row(
                str(day),
                trip.symbol,
                trip.direction,
                f"{trip.qty:f}",
                price(trip.entry_price),
                price(trip.exit_price),
                f"{trip.opened.astimezone(NEW_YORK):%H:%M}",
                f"{trip.closed.astimezone(NEW_YORK):%H:%M}" if trip.closed else "-",
                money(trip.realized),
            )
        total = sum((t.realized for t in members), Decimal(0))
        table.add_row(
            "", "", "", "", "", "", "", "[bold]total[/]", f"[bold]{money(total)}[/]", end_section=True
        )
    return table


def _summary_tables(trips: list[RoundTrip]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("by", "key", "trades", "won", "lost", "P&L"):
        table.add_column(column, justify="right" if column in ("trades", "won", "lost", "P&L") else "left")
    for label, key in (("day", lambda t: str(t.day)), ("symbol", lambda t: t.symbol)):
        members_by: dict[str, list[RoundTrip]] = defaultdict(list)
        for trip in trips:
            members_by[key(trip)].append(trip)
        names = sorted(members_by)
        for i, name in enumerate(names):
            members = members_by[name]
            pnl = sum((t.realized for t in members), Decimal(0))
            won = sum(1 for t in members if t.closed is not None and t.realized > 0)
            lost = sum(1 for t in members if t.closed is not None and t.realized < 0)
            table.add_row(
                label,
                name,
                str(len(members)),
                str(won),
                str(lost),
                money(pnl),
                end_section=i == len(names) - 1,
            )
    return table
