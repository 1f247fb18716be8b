"""A traded day lined up with its rehearsal (`breakout-bot replay`): pure, no I/O.

The live side is the journal's fills of one symbol and session (plus the signals and incidents the
run's log holds); the rehearsal side is the event-path backtest of the same bars with the run's
parameters. Each side becomes a list of `Decision`s (one per entry: its signal, its fills, its exit),
the two lists are lined up by time (`line_up`), and `verdict` sums them up: decisions matched N/M, the
first divergence and what explains it, the slippage, both P&Ls.

A decision *matches* when both sides took it: same side, signal bar, quantity and exit reason. It is
*exact* when, besides, every price agrees (box, entry, exit) and the fills fall in the same minutes:
what the simulator must give on every day (the rehearsal parity, `tests/integration/bot/test_rehearsal.py`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from ..core.model import NEW_YORK
from .trades import Trade

BPS = Decimal(10_000)
ENTRY = "entry"
# The incidents a run's log can name, in the order they are preferred as an explanation.
INCIDENT_KINDS = (
    "rejected order",
    "stale bar",
    "late bar",
    "gap",
    "stream down",
    "order outcome unknown",
    "manual flatten",
    "partial fill",
)


@dataclass(frozen=True)
class Box:
    high: Decimal
    low: Decimal
    range: Decimal


@dataclass(frozen=True)
class LiveFill:
    """One journal record, as the line-up needs it."""

    leg: str  # entry, take_profit, stop_loss, flatten, unknown
    side: str  # buy | sell
    qty: Decimal
    price: Decimal
    time: dt.datetime
    client_order_id: str = ""


@dataclass(frozen=True)
class Signal:
    """A breakout the live bot decided (its log's breakout line and the box before it)."""

    side: str
    bar: dt.datetime  # the signal bar's start
    box: Box | None


@dataclass(frozen=True)
class Incident:
    """Something in the run's log that can change a decision."""

    time: dt.datetime
    kind: str  # one of INCIDENT_KINDS
    text: str


@dataclass(frozen=True)
class Decision:
    side: str
    qty: Decimal
    entry_time: dt.datetime
    entry_price: Decimal  # the entry fills' average
    entry_fills: int = 1
    signal_bar: dt.datetime | None = None
    box: Box | None = None
    exit_reason: str | None = None  # take_profit, stop_loss, flatten, end_of_data; None: still open
    exit_time: dt.datetime | None = None
    exit_price: Decimal | None = None  # the exit fills' average
    exit_fills: int = 0

    @property
    def pnl(self) -> Decimal:
        """Gross, to the cent: what the exits brought against what the entries cost (0 while open)."""
        if self.exit_price is None:
            return Decimal(0)
        move = self.exit_price - self.entry_price
        return (move * self.qty * (1 if self.side == "buy" else -1)).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class Row:
    live: Decision | None
    rehearsal: Decision | None

    @property
    def decision_matches(self) -> bool:
        a, b = self.live, self.rehearsal
        return (
            a is not None
            and b is not None
            and a.side == b.side
            and a.qty == b.qty
            and a.exit_reason == b.exit_reason
            and (a.signal_bar is None or a.signal_bar == b.signal_bar)
        )

    @property
    def exact(self) -> bool:
        a, b = self.live, self.rehearsal
        return (
            self.decision_matches
            and a is not None
            and b is not None
            and (a.box is None or a.box == b.box)
            and a.entry_price == b.entry_price
            and a.exit_price == b.exit_price
            and _minute(a.entry_time) == _minute(b.entry_time)
            and _minute(a.exit_time) == _minute(b.exit_time)
        )

    @property
    def entry_slippage(self) -> Decimal | None:
        """Per share, what the live entry cost beyond the rehearsal's (positive: worse)."""
        a, b = self.live, self.rehearsal
        if a is None or b is None or a.side != b.side:
            return None
        return _adverse(a.side, a.entry_price - b.entry_price)

    @property
    def exit_slippage(self) -> Decimal | None:
        a, b = self.live, self.rehearsal
        if a is None or b is None or a.side != b.side or a.exit_price is None or b.exit_price is None:
            return None
        return _adverse(a.side, b.exit_price - a.exit_price)

    @property
    def entry_slippage_bps(self) -> Decimal | None:
        s = self.entry_slippage
        if s is None or self.rehearsal is None or not self.rehearsal.entry_price:
            return None
        return (s / self.rehearsal.entry_price * BPS).quantize(Decimal("0.1"))

    @property
    def slippage_dollars(self) -> Decimal:
        """Entry and exit slippage times the shares both sides traded (0 where a side is missing)."""
        a = self.live
        if a is None or self.rehearsal is None:
            return Decimal(0)
        qty = min(a.qty, self.rehearsal.qty)
        per_share = (self.entry_slippage or Decimal(0)) + (self.exit_slippage or Decimal(0))
        return (per_share * qty).quantize(Decimal("0.01"))

    @property
    def time(self) -> dt.datetime:
        d = self.live or self.rehearsal
        assert d is not None
        return d.signal_bar or d.entry_time


@dataclass(frozen=True)
class Divergence:
    row: int  # index into the rows
    what: str  # what differs
    why: str  # the explanation (an incident, or what the fills show), or "unexplained"


@dataclass(frozen=True)
class Verdict:
    matched: int
    total: int
    exact: int
    divergence: Divergence | None
    slippage: Decimal
    live_pnl: Decimal
    rehearsal_pnl: Decimal
    notes: list[str] = field(default_factory=list)


def _minute(t: dt.datetime | None) -> dt.datetime | None:
    return None if t is None else t.replace(second=0, microsecond=0)


def _adverse(side: str, diff: Decimal) -> Decimal:
    return diff if side == "buy" else -diff


def _average(fills: Sequence[LiveFill]) -> Decimal:
    qty = sum((f.qty for f in fills), Decimal(0))
    return sum((f.qty * f.price for f in fills), Decimal(0)) / qty if qty else Decimal(0)


def live_decisions(fills: Iterable[LiveFill], signals: Sequence[Signal] = ()) -> list[Decision]:
    """The journal's fills (one symbol, one session, in time order) as decisions: the entry fills that
    open a position, the exit fills that bring it back to flat. Each entry takes the latest logged
    signal of its side at or before its first fill (signal bar and box)."""
    out: list[Decision] = []
    entries: list[LiveFill] = []
    exits: list[LiveFill] = []
    position = Decimal(0)

    def close() -> None:
        first = entries[0]
        signal = next(
            (s for s in reversed(signals) if s.side == first.side and s.bar <= first.time),
            None,
        )
        reason = None
        if exits:
            legs = [f.leg for f in exits]
            reason = max(set(legs), key=lambda leg: sum(f.qty for f in exits if f.leg == leg))
        out.append(
            Decision(
                side=first.side,
                qty=sum((f.qty for f in entries), Decimal(0)),
                entry_time=first.time,
                entry_price=_average(entries),
                entry_fills=len(entries),
                signal_bar=signal.bar if signal else None,
                box=signal.box if signal else None,
                exit_reason=reason if position == 0 else None,
                exit_time=exits[-1].time if exits and position == 0 else None,
                exit_price=_average(exits) if exits and position == 0 else None,
                exit_fills=len(exits),
            )
        )

    for f in sorted(fills, key=lambda f: f.time):
        signed = f.qty if f.side == "buy" else -f.qty
        if position == 0 or (position > 0) == (signed > 0):
            if position == 0 and entries:
                close()
                entries, exits = [], []
            entries.append(f)
        else:
            exits.append(f)
        position += signed
    if entries:
        close()
    return out


def _price(x: float) -> Decimal:
    return Decimal(f"{x:.4f}").normalize()


def rehearsal_decisions(trades: Iterable[Trade], bar_starts: Sequence[dt.datetime]) -> list[Decision]:
    """The backtest's trades as decisions; the signal bar is the bar before the entry's (the backtest
    fills an entry at the next bar's open)."""
    starts = sorted(bar_starts)
    out = []
    for t in trades:
        before = [s for s in starts if s < t.entry_time]
        out.append(
            Decision(
                side=t.side,
                qty=Decimal(t.qty),
                entry_time=t.entry_time,
                entry_price=_price(t.entry_price),
                signal_bar=before[-1] if before else None,
                box=Box(_price(t.box_high), _price(t.box_low), _price(t.box_range)),
                exit_reason=t.exit_reason,
                exit_time=t.exit_time,
                exit_price=_price(t.exit_price),
                exit_fills=1,
            )
        )
    return out


def _key(d: Decision) -> dt.datetime:
    """The signal minute (for a live entry without its logged signal: the minute before its fill)."""
    if d.signal_bar is not None:
        return d.signal_bar.replace(second=0, microsecond=0)
    return d.entry_time.replace(second=0, microsecond=0) - dt.timedelta(minutes=1)


def line_up(live: Sequence[Decision], rehearsal: Sequence[Decision]) -> list[Row]:
    """Both sides' decisions in time order, paired where they are the same signal (side and signal
    minute); a decision only one side took gets a row of its own. Every decision is in exactly one row."""
    rows: list[Row] = []
    i = j = 0
    while i < len(live) or j < len(rehearsal):
        a = live[i] if i < len(live) else None
        b = rehearsal[j] if j < len(rehearsal) else None
        if a is not None and b is not None:
            ka, kb = _key(a), _key(b)
            if ka == kb and a.side == b.side:
                rows.append(Row(a, b))
                i, j = i + 1, j + 1
            elif ka <= kb:
                rows.append(Row(a, None))
                i += 1
            else:
                rows.append(Row(None, b))
                j += 1
        elif a is not None:
            rows.append(Row(a, None))
            i += 1
        else:
            rows.append(Row(None, b))
            j += 1
    return rows


def _what(row: Row) -> str:
    a, b = row.live, row.rehearsal
    if a is None and b is not None:
        return f"the rehearsal {_did(b)}; the bot did not trade it"
    if b is None and a is not None:
        return f"the bot {_did(a)}; the rehearsal did not"
    assert a is not None and b is not None
    if a.side != b.side:
        return f"the bot went {_long(a.side)}, the rehearsal {_long(b.side)}"
    if a.qty != b.qty:
        return f"the bot bought/sold {a.qty} shares, the rehearsal {b.qty}"
    if a.signal_bar is not None and a.signal_bar != b.signal_bar:
        return f"signal bar {_hm(a.signal_bar)} live, {_hm(b.signal_bar)} in the rehearsal"
    if a.exit_reason != b.exit_reason:
        return f"exit by {a.exit_reason or 'none yet'} live, by {b.exit_reason} in the rehearsal"
    if a.box is not None and a.box != b.box:
        return (
            f"box {a.box.low}-{a.box.high} live, {b.box.low}-{b.box.high} in the rehearsal"
            if b.box
            else "box"
        )
    if a.entry_price != b.entry_price:
        return f"entry at {a.entry_price} live, {b.entry_price} in the rehearsal"
    if a.exit_price != b.exit_price:
        return f"exit at {a.exit_price} live, {b.exit_price} in the rehearsal"
    return f"fill minutes differ (entry {_hm(a.entry_time)} vs {_hm(b.entry_time)})"


def _did(d: Decision) -> str:
    return f"went {_long(d.side)} on the {_hm(d.signal_bar or d.entry_time)} bar"


def _long(side: str) -> str:
    return "long" if side == "buy" else "short"


def _hm(t: dt.datetime | None) -> str:
    return "?" if t is None else f"{t.astimezone(NEW_YORK):%H:%M}"


def explain(row: Row, incidents: Sequence[Incident], after: dt.datetime | None, feed: str | None) -> str:
    """What explains a divergent row. A different decision: an incident the log holds between the
    previous row and this one's end (the preferred kind first), else what the fills show. The same
    decision at other prices: the fills first (an entry in pieces), then the feed, then an incident."""
    a, b = row.live, row.rehearsal
    by_fills = _by_fills(a, b)
    if row.decision_matches and by_fills is not None:
        return by_fills
    if row.decision_matches and feed == "iex":
        return IEX
    decided = [d for d in (a, b) if d is not None]
    until = max((d.exit_time or d.entry_time) for d in decided) + dt.timedelta(minutes=2)
    since = after if after is not None else min(_key(d) for d in decided) - dt.timedelta(minutes=15)
    near = [i for i in incidents if since <= i.time <= until]
    for kind in INCIDENT_KINDS:
        hits = [i for i in near if i.kind == kind]
        if hits:
            return f"{kind} at {_hm(hits[0].time)}: {hits[0].text}"
    if by_fills is not None:
        return by_fills
    if a is not None and b is not None and a.exit_reason == "flatten" and b.exit_reason != "flatten":
        return (
            f"manual flatten: the bot closed at {_hm(a.exit_time)}, the rehearsal held to its {b.exit_reason}"
        )
    if a is not None and a.exit_reason is None:
        return "the bot's position was still open when the journal was read"
    if feed == "iex":
        return IEX
    return "unexplained"


IEX = "IEX vs consolidated prices: the bot decided on IEX bars, the rehearsal on consolidated ones"


def _by_fills(a: Decision | None, b: Decision | None) -> str | None:
    """A partial fill, as the fills show it (the rehearsal fills each order at once, at one price)."""
    if a is None or b is None:
        return None
    if a.qty < b.qty:
        return f"partial fill: the entry filled {a.qty} of {b.qty} shares"
    if a.entry_fills > 1 and a.entry_price != b.entry_price:
        return (
            f"partial fill: the entry filled in {a.entry_fills} pieces at an average of "
            f"{a.entry_price.quantize(Decimal('0.0001')).normalize()}, the rehearsal's at once at {b.entry_price}"
        )
    if a.exit_fills > 1 and a.exit_price != b.exit_price:
        return f"partial fill: the exit filled in {a.exit_fills} pieces"
    return None


def verdict(rows: Sequence[Row], incidents: Sequence[Incident] = (), feed: str | None = None) -> Verdict:
    first: Divergence | None = None
    for n, row in enumerate(rows):
        if not row.exact:
            after = rows[n - 1].time if n else None
            first = Divergence(n, _what(row), explain(row, incidents, after, feed))
            break
    notes = []
    if first is None and feed == "iex" and rows:
        notes.append("the bot decided on IEX bars: prices may differ from consolidated ones by a cent")
    return Verdict(
        matched=sum(1 for r in rows if r.decision_matches),
        total=len(rows),
        exact=sum(1 for r in rows if r.exact),
        divergence=first,
        slippage=sum((r.slippage_dollars for r in rows), Decimal(0)),
        live_pnl=sum((r.live.pnl for r in rows if r.live is not None), Decimal(0)),
        rehearsal_pnl=sum((r.rehearsal.pnl for r in rows if r.rehearsal is not None), Decimal(0)),
        notes=notes,
    )
