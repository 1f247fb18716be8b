"""`breakout-bot replay --date YYYY-MM-DD [--symbol S]`: did the bot do what its rehearsal says?

One traded day of the journal lined up with the event-path backtest of the same bars under the
parameters the run used. Where things come from:

* the fills: the journal (`journal.read_journal`, read-only), that symbol's records of that session;
* the run's parameters, feed and, for a simulated run, the simulator's seed and data file: the run's
  start line in the log (`run <id> started: ... params {json}`, cli/commands/run.py `log_start`), found
  by the records' run id; the log also gives the live signals (box and breakout lines) and the
  incidents that change decisions (a refused entry, a stale signal, a stream down...);
* the bars: a simulated run's are made again from its seed (or read from its data file); a paper or
  live run's come from the `bars` cache, the missing day downloaded with the user's keys first.

The comparison itself is `backtest/lineup.py` (pure).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ...config.settings import Settings
from ...core.model import NEW_YORK
from ...core.params import Params
from ...errors import ConfigError, UserError
from ...live.status import money
from ...logging_setup import LOG_NAME
from ..args import (
    add_connection_arguments,
    journal_from_args,
    parse_date_flag,
    settings_from_args,
    simulated_log_file,
)
from .bars import DEFAULT_CACHE


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--date", required=True, metavar="YYYY-MM-DD", help="the session to replay (New York)"
    )
    parser.add_argument("--symbol", help="the symbol (default: the one traded that day)")
    parser.add_argument(
        "--run", metavar="RUN_ID", help="only this run's fills (default: every run of that day)"
    )
    parser.add_argument(
        "--simulated",
        action="store_true",
        help="a simulated run (its journal and log in simulated/ beside the configured ones)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        metavar="DIR",
        help=f"the bars cache of a paper or live run's day (default {DEFAULT_CACHE}; missing: downloaded)",
    )
    parser.add_argument("--json", action="store_true", help="print the line-up as JSON")
    parser.add_argument(
        "--png", type=Path, metavar="PATH", help="chart: the day's price, both sides' entries and exits"
    )
    add_connection_arguments(parser)


# -- the run's log ---------------------------------------------------------------------------------

_TEXT_LINE = re.compile(r"^(\S+) (\w+)\s+(\S+): (.*)$")
_START = re.compile(
    r"run (?P<run>\S+) started: mode (?P<mode>\w+), account (?P<account>\S+), .*?"
    r"(?:feed (?P<feed>\w+), )?(?:simulator (?P<sim>\{.*?\}), )?params (?P<params>\{.*\})$"
)
_BOX = re.compile(r"^(?P<sym>\S+): box (?P<low>[\d.]+)-(?P<high>[\d.]+) range (?P<range>[\d.]+)")
_BREAKOUT = re.compile(r"^(?P<sym>\S+): (?P<dir>long|short) breakout: (?P<hm>\d\d:\d\d) bar close")
# Log lines that can change a decision, by kind (lineup.INCIDENT_KINDS).
_INCIDENTS = (  # the first pattern a line matches names it
    ("late bar", re.compile(r"bar is \d+ min old")),  # core/search.py: the bar reached the bot late
    ("stale bar", re.compile(r"stale|signal is \d+ s old")),  # the bot stalled between signal and send
    ("stream down", re.compile(r"stream down|reconnect")),
    ("order outcome unknown", re.compile(r"outcome unknown|not at the broker")),
    ("rejected order", re.compile(r"refused|rejected")),
    ("manual flatten", re.compile(r"kill switch|flatten requested")),
    ("gap", re.compile(r"\bgap\b|missing bars?")),
)


@dataclass
class RunLog:
    starts: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> start line fields
    lines: list[tuple[dt.datetime, str]] = field(default_factory=list)  # (time, message)


def _log_files(path: Path) -> list[Path]:
    """The log and its rotated copies (oldest first)."""
    rotated = sorted(path.parent.glob(path.name + ".*"), key=lambda p: p.stat().st_mtime)
    return [*rotated, *([path] if path.exists() else [])]


def read_run_log(path: Path, day: dt.date) -> RunLog:
    out = RunLog()
    for file in _log_files(path):
        try:
            text = file.read_text(errors="replace")
        except OSError:
            continue
        for raw in text.splitlines():
            parsed = _parse_line(raw)
            if parsed is None:
                continue
            when, message = parsed
            start = _START.search(message)
            if start is not None:
                fields = start.groupdict()
                fields["params"] = json.loads(fields["params"])
                fields["sim"] = json.loads(fields["sim"]) if fields["sim"] else None
                out.starts[fields["run"]] = fields
            elif when.astimezone(NEW_YORK).date() == day:
                out.lines.append((when, message))
    return out


def _parse_line(raw: str) -> tuple[dt.datetime, str] | None:
    try:
        if raw.startswith("{"):
            entry = json.loads(raw)
            return dt.datetime.fromisoformat(entry["ts"]), str(entry["message"])
        m = _TEXT_LINE.match(raw)
        if m is None:
            return None
        return dt.datetime.fromisoformat(m.group(1)), m.group(4)
    except (ValueError, KeyError, TypeError):
        return None


def signals_and_incidents(log: RunLog, symbol: str, day: dt.date) -> tuple[list[Any], list[Any]]:
    from ...backtest.lineup import Box, Incident, Signal

    signals, incidents = [], []
    box = None
    head = f"{symbol}: "
    for when, message in log.lines:
        if not message.startswith(head):
            continue
        if (m := _BOX.match(message)) is not None:
            box = Box(*(Decimal(m.group(k)).normalize() for k in ("high", "low", "range")))
            continue
        if (m := _BREAKOUT.match(message)) is not None:
            hm = dt.time.fromisoformat(m.group("hm"))
            bar = dt.datetime.combine(day, hm, NEW_YORK)
            signals.append(Signal("buy" if m.group("dir") == "long" else "sell", bar, box))
            continue
        body = message[len(head) :]
        for kind, pattern in _INCIDENTS:
            if pattern.search(body):
                incidents.append(Incident(when, kind, body))
                break
    return signals, incidents


def bar_gaps(starts: list[dt.datetime]) -> list[Any]:
    """Missing minutes in the rehearsal's bars (a feed without a print, a hole in a file): a box that
    spans them, or a breakout on the bar after them, may differ from what the bot saw."""
    from ...backtest.lineup import Incident

    out = []
    for before, after in itertools.pairwise(starts):
        missing = int((after - before).total_seconds() // 60) - 1
        if 0 < missing < 6 * 60 and before.astimezone(NEW_YORK).date() == after.astimezone(NEW_YORK).date():
            first = before + dt.timedelta(minutes=1)
            out.append(
                Incident(
                    first, "gap", f"no bar for {missing} minute(s) from {first.astimezone(NEW_YORK):%H:%M}"
                )
            )
    return out


# -- the command -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from ...backtest import lineup
    from ...journal import read_journal

    day = parse_date_flag(args.date, "--date")
    settings = settings_from_args(args, trading=False)
    journal_path, log_path = _paths(settings, args)
    if not journal_path.exists():
        raise ConfigError(f"no journal at {journal_path}: nothing was traded there")
    records = [r for r in read_journal(journal_path) if r.filled_at.astimezone(NEW_YORK).date() == day]
    if args.run:
        records = [r for r in records if r.run == args.run]
    symbols = sorted({r.symbol for r in records})
    symbol = args.symbol.upper() if args.symbol else None
    if symbol is None:
        if not symbols:
            raise UserError(f"no fills on {day} in {journal_path}", exit_code=1)
        if len(symbols) > 1:
            raise ConfigError(f"{day}: {', '.join(symbols)} traded that day; pick one with --symbol")
        symbol = symbols[0]
    records = [r for r in records if r.symbol == symbol]
    if not records:
        run_note = f" of run {args.run}" if args.run else ""
        raise UserError(f"no fills{run_note} on {day} for {symbol} in {journal_path}", exit_code=1)
    runs = sorted({r.run for r in records if r.run})
    log = read_run_log(log_path, day)
    start = next((log.starts[r] for r in runs if r in log.starts), None)
    params, source, feed, notes = _run_facts(start, settings, runs, log_path)
    bars, bars_note = _bars(source, symbol, day, args, settings, feed)
    notes.append(bars_note)

    from ...backtest.engine import run_backtest

    result = run_backtest(bars, symbol, params)
    signals, incidents = signals_and_incidents(log, symbol, day)
    incidents = sorted([*incidents, *bar_gaps(list(bars.index.to_pydatetime()))], key=lambda i: i.time)
    fills = [
        lineup.LiveFill(r.leg, r.side, Decimal(r.qty), Decimal(r.price), r.filled_at, r.client_order_id)
        for r in records
    ]
    live = lineup.live_decisions(fills, signals)
    rehearsal = lineup.rehearsal_decisions(result.trades, list(bars.index.to_pydatetime()))
    rows = lineup.line_up(live, rehearsal)
    simulated_iex = source.get("kind") == "simulator" and feed == "iex"
    verdict = lineup.verdict(rows, incidents, "iex" if simulated_iex else None)
    report = _report(symbol, day, runs, params, feed, rows, verdict, notes, incidents)
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        _print_table(report)
    if args.png is not None:
        written = _chart(bars, symbol, day, rows, verdict, args.png)
        print(f"chart: {written}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _paths(settings: Settings, args: argparse.Namespace) -> tuple[Path, Path]:
    """The journal and the log of the runs to replay (a simulated run's with --simulated)."""
    log_file = simulated_log_file(args, settings) if args.simulated else settings.log_file
    return journal_from_args(args, settings), log_file or settings.log_dir / LOG_NAME


def _run_facts(
    start: dict[str, Any] | None, settings: Settings, runs: list[str], log_path: Path
) -> tuple[Params, dict[str, Any], str, list[str]]:
    """The run's parameters, where its bars come from, its feed, and notes on what was assumed."""
    notes: list[str] = []
    if start is None:
        why = f"no start line of run {', '.join(runs)} in {log_path}" if runs else "fills without a run id"
        notes.append(f"{why}: parameters and feed from the current settings")
        return settings.params, {"kind": "cache"}, settings.feed, notes
    names = set(Params.__dataclass_fields__)
    params = Params(**{k: v for k, v in start["params"].items() if k in names})
    feed = start["feed"] or settings.feed
    notes.append(f"parameters of run {start['run']} ({start['mode']}, account {start['account']})")
    if start["mode"] == "simulator":
        if start["sim"] is None:
            raise UserError(
                f"run {start['run']} was simulated by an earlier breakout-bot that did not log its seed: "
                "its bars cannot be made again",
                exit_code=1,
            )
        return params, {"kind": "simulator", **start["sim"]}, feed, notes
    return params, {"kind": "cache"}, feed, notes


def _bars(
    source: dict[str, Any], symbol: str, day: dt.date, args: argparse.Namespace, settings: Settings, feed: str
) -> tuple[Any, str]:
    from ...market.bars import load_bars

    if source["kind"] == "simulator":
        if source.get("data"):
            data = Path(source["data"])
            if not data.exists():
                raise ConfigError(f"the simulated run's data file {data} is gone")
            return load_bars(data, symbol, start=day, end=day), f"bars: the simulator's data file {data}"
        from ...market.synthetic import synthetic_bars

        seed = int(source["seed"])
        return synthetic_bars(symbol, seed, 1, day), f"bars: the simulator's synthetic bars, seed {seed}"
    from ...market.cache import is_cached

    cache: Path = args.cache_dir
    if not is_cached(cache, symbol, day):
        _download(settings, symbol, day, cache, feed)
    bars = load_bars(cache, symbol, start=day, end=day)
    return bars, f"bars: the cache {cache} (feed {feed})"


def _download(settings: Settings, symbol: str, day: dt.date, cache: Path, feed: str) -> None:
    if not settings.has_keys:
        raise ConfigError(
            f"{symbol} {day} is not in the bars cache {cache}, and there are no Alpaca keys to download it "
            f"(breakout-bot bars --symbol {symbol} --start {day} --end {day})"
        )
    from ...broker.alpaca.factory import broker_from_settings
    from .bars import download_missing

    broker = broker_from_settings(settings)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the download's progress never mixes with --json
            download_missing(broker, (symbol,), day, day, cache, feed)
    finally:
        broker.close()


# -- the report ------------------------------------------------------------------------------------


def _hms(t: dt.datetime | None) -> str | None:
    return None if t is None else f"{t.astimezone(NEW_YORK):%H:%M:%S}"


def _side(d: Any) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "side": d.side,
        "signal_bar": None if d.signal_bar is None else f"{d.signal_bar.astimezone(NEW_YORK):%H:%M}",
        "box": None if d.box is None else {"high": d.box.high, "low": d.box.low, "range": d.box.range},
        "qty": d.qty,
        "entry_time": _hms(d.entry_time),
        "entry_price": d.entry_price.quantize(Decimal("0.0001")).normalize(),
        "entry_fills": d.entry_fills,
        "exit_reason": d.exit_reason,
        "exit_time": _hms(d.exit_time),
        "exit_price": d.exit_price,
        "pnl": d.pnl,
    }


def _report(
    symbol: str,
    day: dt.date,
    runs: list[str],
    params: Params,
    feed: str,
    rows: list[Any],
    verdict: Any,
    notes: list[str],
    incidents: list[Any],
) -> dict[str, Any]:
    def cents(x: Decimal | None) -> Decimal | None:
        return None if x is None else (x * 100).quantize(Decimal("0.01"))

    d = verdict.divergence
    return {
        "symbol": symbol,
        "date": str(day),
        "runs": runs,
        "feed": feed,
        "params": {k: getattr(params, k) for k in Params.__dataclass_fields__},
        "rows": [
            {
                "live": _side(r.live),
                "rehearsal": _side(r.rehearsal),
                "decision_matches": r.decision_matches,
                "exact": r.exact,
                "entry_slippage_cents": cents(r.entry_slippage),
                "entry_slippage_bps": r.entry_slippage_bps,
                "exit_slippage_cents": cents(r.exit_slippage),
            }
            for r in rows
        ],
        "verdict": {
            "decisions_matched": verdict.matched,
            "decisions": verdict.total,
            "exact": verdict.exact,
            "first_divergence": None if d is None else {"row": d.row + 1, "what": d.what, "why": d.why},
            "slippage": verdict.slippage,
            "live_pnl": verdict.live_pnl,
            "rehearsal_pnl": verdict.rehearsal_pnl,
        },
        "incidents": [{"time": _hms(i.time), "kind": i.kind, "text": i.text} for i in incidents],
        "notes": [*notes, *verdict.notes],
    }


def _print_table(report: dict[str, Any]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    title = f"{report['symbol']} {report['date']}: live vs rehearsal (run {', '.join(report['runs']) or '?'})"
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("#", "", "side", "signal", "box low-high (range)", "entry", "slip ¢ / bps", "exit", "P&L"):
        table.add_column(column, justify="right" if column in ("#", "P&L", "slip ¢ / bps") else "left")
    for n, row in enumerate(report["rows"], 1):
        mark = "=" if row["exact"] else ("~" if row["decision_matches"] else "≠")
        for label, side in (("live", row["live"]), ("rehearsal", row["rehearsal"])):
            slip = ""
            if label == "live" and row["entry_slippage_cents"] is not None:
                slip = f"{row['entry_slippage_cents']} / {row['entry_slippage_bps']}"
            if side is None:
                table.add_row(
                    f"{n}{mark}" if label == "live" else "", label, "—", "", "", "no trade", "", "", ""
                )
                continue
            b = side["box"]
            table.add_row(
                f"{n}{mark}" if label == "live" else "",
                label,
                "long" if side["side"] == "buy" else "short",
                side["signal_bar"] or "?",
                "?" if b is None else f"{b['low']}-{b['high']} ({b['range']})",
                f"{side['qty']} @ {side['entry_price']} {side['entry_time']}"
                + (f" ({side['entry_fills']} fills)" if side["entry_fills"] > 1 else ""),
                slip,
                f"{side['exit_reason'] or 'open'} @ {side['exit_price'] or '-'} {side['exit_time'] or ''}",
                money(side["pnl"]),
            )
    console.print(table)
    v = report["verdict"]
    console.print(
        f"verdict: decisions matched {v['decisions_matched']}/{v['decisions']}, exact (every price) "
        f"{v['exact']}/{v['decisions']}; slippage {money(v['slippage'])}; live P&L {money(v['live_pnl'])}, "
        f"rehearsal P&L {money(v['rehearsal_pnl'])}",
        highlight=False,
        soft_wrap=True,
    )
    d = v["first_divergence"]
    if d is not None:
        console.print(
            f"first divergence: row {d['row']}: {d['what']} ({d['why']})", highlight=False, soft_wrap=True
        )
    for note in report["notes"]:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)


def _chart(bars: Any, symbol: str, day: dt.date, rows: list[Any], verdict: Any, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    from ...backtest.charts import save_png

    def naive(t: dt.datetime) -> float:
        return float(mdates.date2num(t.astimezone(NEW_YORK).replace(tzinfo=None)))

    times = [naive(t) for t in bars.index.to_pydatetime()]
    fig, ax = plt.subplots(figsize=(14, 6))
    ax.plot(times, bars["close"].to_numpy(), lw=0.8, color="#555", label="close")

    styles = {"live": ("tab:blue", 90, "o"), "rehearsal": ("tab:orange", 40, "D")}
    for label, (color, size, exit_marker) in styles.items():
        entries = [d for r in rows if (d := getattr(r, label)) is not None]
        exits = [d for d in entries if d.exit_time is not None and d.exit_price is not None]
        groups = [
            *(
                (
                    [d for d in entries if d.side == side],
                    "entry",
                    marker,
                    f"{'long' if side == 'buy' else 'short'} entry",
                )
                for side, marker in (("buy", "^"), ("sell", "v"))
            ),
            (exits, "exit", exit_marker, "exit"),
        ]
        for group, end, marker, name in groups:
            if group:
                ax.scatter(
                    [naive(getattr(d, f"{end}_time")) for d in group],
                    [float(getattr(d, f"{end}_price")) for d in group],
                    marker=marker,
                    s=size,
                    facecolors="none" if label == "live" else color,
                    edgecolors=color,
                    label=f"{label} {name}",
                    zorder=3,
                )
        for d in exits:
            ax.plot(
                [naive(d.entry_time), naive(d.exit_time)],
                [float(d.entry_price), float(d.exit_price)],
                color=color,
                lw=0.6,
                ls="--",
            )
    ax.set_title(
        f"{symbol} {day}: decisions matched {verdict.matched}/{verdict.total}, live P&L {money(verdict.live_pnl)}, "
        f"rehearsal P&L {money(verdict.rehearsal_pnl)}, slippage {money(verdict.slippage)}"
    )
    ax.set_ylabel("price")
    ax.legend(loc="best", fontsize=8)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    return save_png(fig, path)
