"""Invariant checks for a simulated trading day, judged from the simulator's own records.

Used by the fault suite (tests/faults) and by benchmarks/faults.py. Inputs are the JSON the simulator
serves (GET /sim/fills, /v2/orders?status=all&nested=true, /sim/requests, /v2/positions) and the raw
journal; the output is a list of violations (kind, detail). Pure: no I/O.

The invariants (docs/design.md, "Reliability invariants"):
* ``duplicate_entry``: a client_order_id used twice, an entry sent while another entry was working or
  a position was open, or two entries for the same box (same side, stop and take-profit) of which the
  first one traded;
* ``fill_missing`` / ``fill_duplicated`` / ``fill_phantom``: every execution of the simulator is in the
  journal exactly once (by execution id), and the journal holds nothing else;
* ``unprotected``: a non-zero position without a working stop on the closing side for longer than
  the reconcile interval;
* ``not_flat``: a position still open at close - flatten minutes + grace (or at the end);
* ``late_entry``: an entry submitted with no more than ``no_entry_minutes`` left to the close (unless
  its POST had begun before the cutoff and a suspension of the bot held its body back: see
  ``_held_back_by_a_pause``);
* ``rate_limit``: more than 200 requests (429s not counted) inside some 60 s virtual window;
* ``stale_entry`` (issue 16): an entry no bar could have decided in the ``SIGNAL_AGE_LIMIT`` before it
  reached the broker (no bar ending then closes beyond the box level its bracket implies);
* ``order_sent_hang`` (issue 16): the bot's log shows a symbol in order_sent for more than
  ``ORDER_SENT_LIMIT`` of the clock's time (one incarnation of the bot, from its phase lines).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from ..broker.timestamps import parse_optional_time, parse_time
from ..core.ids import parse_client_order_id
from ..core.model import NEW_YORK

SAME_BREAKOUT_WINDOW = timedelta(minutes=10)
# The bot's rule is 70 s (core/search.py, MAX_SIGNAL_AGE); the rest covers what may pass between its
# check and the POST's arrival: the client throttle, the adapter's lookup and re-send with backoff.
SIGNAL_AGE_LIMIT = timedelta(seconds=100)
ORDER_SENT_LIMIT = timedelta(minutes=5)  # the bot gives up on an unanswered entry after 3 (core/pending.py)
FINAL = ("filled", "canceled", "expired", "rejected", "replaced", "done_for_day", "stopped")
INVARIANTS = (
    "duplicate_entry",
    "fill_missing",
    "fill_duplicated",
    "fill_phantom",
    "unprotected",
    "not_flat",
    "late_entry",
    "rate_limit",
    "stale_entry",
    "order_sent_hang",
)


@dataclass(frozen=True)
class Violation:
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


def _ny(when: datetime) -> str:
    return when.astimezone(NEW_YORK).strftime("%H:%M:%S ET")


def _final_time(order: Mapping[str, Any]) -> datetime | None:
    """When an order stopped working (None: still working at the end of the records)."""
    if str(order.get("status")) not in FINAL:
        return None
    for key in ("filled_at", "canceled_at", "expired_at", "failed_at", "replaced_at", "updated_at"):
        ts = parse_optional_time(order.get(key))
        if ts is not None:
            return ts
    return None


def _flatten(orders: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for o in orders:
        out.append(o)
        out.extend(_flatten(o.get("legs") or ()))
    return out


# How close to a pause's start the POST's headers arrived, and to its end the order was created.
POST_NEAR_PAUSE = timedelta(seconds=5)


def _held_back_by_a_pause(
    sent: datetime,
    cutoff: datetime,
    requests: Sequence[Mapping[str, Any]],
    pauses: Sequence[tuple[datetime, datetime]],
) -> bool:
    """Was this entry's POST under way before the cutoff when a suspension of the bot began?

    The simulator logs a request when it starts handling it and creates the order a little later, on
    its own clock; the suite moves that clock (from another thread) while the bot is stopped, so a POST
    that arrived just before the SIGSTOP is stamped with the resumed time. The bot had decided before
    the cutoff and its request was already at the broker: no later check of its own could stop it.
    Found by seed 161100014 (POST logged at 15:34:02, the order created at 15:45:33, the clock's time
    at SIGCONT). A suspension that began after the cutoff, or a POST logged before no suspension, still
    counts as a late entry."""
    posts = [
        datetime.fromtimestamp(float(r["ts"]), timezone.utc)
        for r in requests
        if r.get("method") == "POST" and r.get("path") == "/v2/orders"
    ]
    return any(
        began < cutoff
        and ended <= sent <= ended + POST_NEAR_PAUSE
        and any(began - POST_NEAR_PAUSE <= t <= began for t in posts)
        for began, ended in pauses
    )


def position_timeline(fills: Sequence[Mapping[str, Any]], symbol: str) -> list[tuple[datetime, Decimal]]:
    """(time, position after the fills at that time), in time order."""
    pos = Decimal(0)
    out: list[tuple[datetime, Decimal]] = []
    rows = sorted((f for f in fills if f.get("symbol") == symbol), key=lambda f: str(f["transaction_time"]))
    for f in rows:
        qty = Decimal(str(f["qty"]))
        pos += qty if f["side"] == "buy" else -qty
        ts = parse_time(f["transaction_time"])
        if out and out[-1][0] == ts:
            out[-1] = (ts, pos)
        else:
            out.append((ts, pos))
    return out


def _position_at(timeline: Sequence[tuple[datetime, Decimal]], when: datetime) -> Decimal:
    pos = Decimal(0)
    for ts, p in timeline:
        if ts > when:
            break
        pos = p
    return pos


def check_entries(
    orders: Sequence[Mapping[str, Any]],
    timeline: Sequence[tuple[datetime, Decimal]],
    symbol: str,
    close: datetime,
    no_entry_minutes: int,
    requests: Sequence[Mapping[str, Any]] = (),
    pauses: Sequence[tuple[datetime, datetime]] = (),
) -> list[Violation]:
    out: list[Violation] = []
    everything = _flatten(orders)
    counts = Counter(str(o.get("client_order_id")) for o in everything if o.get("client_order_id"))
    for cid, n in counts.items():
        if n > 1:
            out.append(Violation("duplicate_entry", f"client_order_id {cid} used by {n} orders"))
    entries = [
        o
        for o in orders
        if o.get("symbol") == symbol and parse_client_order_id(str(o.get("client_order_id") or ""))
    ]
    entries.sort(key=lambda o: str(o["submitted_at"]))
    cutoff = close - timedelta(minutes=no_entry_minutes)
    for i, e in enumerate(entries):
        sent = parse_time(e["submitted_at"])
        if sent >= cutoff and not _held_back_by_a_pause(sent, cutoff, requests, pauses):
            out.append(
                Violation("late_entry", f"{e['client_order_id']} submitted {_ny(sent)}, cutoff {_ny(cutoff)}")
            )
        for prev in entries[:i]:
            ended = _final_time(prev)
            if ended is None or ended > sent:
                out.append(
                    Violation(
                        "duplicate_entry",
                        f"{e['client_order_id']} sent {_ny(sent)} while {prev['client_order_id']} was working",
                    )
                )
            # A re-sent breakout (a restart that forgot its entry) follows within minutes of the first
            # one's end; identical brackets hours apart are different breakouts that price the same
            # (seen: two floored boxes, 4 h apart).
            trade_end = max(
                (t for t in (_final_time(o) for o in [prev, *(prev.get("legs") or ())]) if t is not None),
                default=None,
            )
            resent = trade_end is not None and sent - trade_end < SAME_BREAKOUT_WINDOW
            if resent and _box(prev) == _box(e) and Decimal(str(prev.get("filled_qty") or 0)) > 0:
                out.append(
                    Violation(
                        "duplicate_entry",
                        f"{e['client_order_id']} repeats the box of {prev['client_order_id']}",
                    )
                )
        before = _position_at(timeline, sent - timedelta(microseconds=1))
        if before != 0:
            out.append(
                Violation(
                    "duplicate_entry",
                    f"{e['client_order_id']} sent {_ny(sent)} with position {before} open",
                )
            )
    return out


def _box(order: Mapping[str, Any]) -> tuple[str, str, str]:
    legs = order.get("legs") or ()
    tp = next((str(leg.get("limit_price")) for leg in legs if leg.get("type") == "limit"), "")
    sl = next((str(leg.get("stop_price")) for leg in legs if str(leg.get("type")).startswith("stop")), "")
    return (str(order.get("side")), tp, sl)


def check_journal(
    fills: Sequence[Mapping[str, Any]], journal_raw: bytes | str, symbol: str
) -> list[Violation]:
    out: list[Violation] = []
    sim_ids = [
        str(f.get("execution_id") or str(f["id"]).split("::", 1)[-1])
        for f in fills
        if f.get("symbol") == symbol
    ]
    text = journal_raw.decode() if isinstance(journal_raw, bytes) else journal_raw
    records = json.loads(text) if text.strip() else []
    ids = Counter(str(r["id"]) for r in records if r.get("symbol") == symbol)
    for eid in sim_ids:
        if ids[eid] == 0:
            out.append(Violation("fill_missing", f"execution {eid} not in the journal"))
        elif ids[eid] > 1:
            out.append(Violation("fill_duplicated", f"execution {eid} journaled {ids[eid]} times"))
    known = set(sim_ids)
    for eid in ids:
        if eid not in known:
            out.append(Violation("fill_phantom", f"journal record {eid} is no execution of the broker"))
    return out


def check_protection(
    orders: Sequence[Mapping[str, Any]],
    fills: Sequence[Mapping[str, Any]],
    timeline: Sequence[tuple[datetime, Decimal]],
    symbol: str,
    end: datetime,
    max_gap: timedelta,
) -> list[Violation]:
    """Walk the position timeline; a non-zero position needs a working stop on the closing side."""
    first_fill: dict[str, datetime] = {}
    for f in fills:
        ts = parse_optional_time(f["transaction_time"])
        oid = str(f["order_id"])
        if ts is not None and (oid not in first_fill or ts < first_fill[oid]):
            first_fill[oid] = ts
    stops: list[tuple[str, datetime, datetime]] = []  # side, active from, active until
    for parent in orders:
        if parent.get("symbol") != symbol:
            continue
        for leg in _flatten(parent.get("legs") or ()):
            if not str(leg.get("type")).startswith("stop"):
                continue
            start = first_fill.get(str(parent["id"]))
            if start is None:
                continue
            stops.append((str(leg.get("side")), start, _final_time(leg) or end))
    out: list[Violation] = []
    points = sorted({ts for ts, _ in timeline} | {s for _, s, _ in stops} | {u for _, _, u in stops})
    exposed_since: datetime | None = None
    for ts in [*points, end]:
        pos = _position_at(timeline, ts)
        closing = "sell" if pos > 0 else "buy"
        protected = pos == 0 or any(side == closing and s <= ts < u for side, s, u in stops)
        if not protected and exposed_since is None:
            exposed_since = ts
        elif protected and exposed_since is not None:
            if ts - exposed_since > max_gap:
                out.append(Violation("unprotected", f"position unprotected {_ny(exposed_since)}-{_ny(ts)}"))
            exposed_since = None
    if exposed_since is not None and end - exposed_since > max_gap:
        out.append(Violation("unprotected", f"position unprotected from {_ny(exposed_since)} to the end"))
    return out


def check_flat(
    timeline: Sequence[tuple[datetime, Decimal]],
    close: datetime,
    flatten_minutes: int,
    grace: timedelta,
    positions: Sequence[Mapping[str, Any]],
    symbol: str,
) -> list[Violation]:
    out: list[Violation] = []
    deadline = close - timedelta(minutes=flatten_minutes) + grace
    pos = _position_at(timeline, deadline)
    if pos != 0:
        out.append(Violation("not_flat", f"position {pos} at {_ny(deadline)}"))
    later = [(ts, p) for ts, p in timeline if ts > deadline and p != 0]
    if later:
        out.append(
            Violation("not_flat", f"position {later[0][1]} opened at {_ny(later[0][0])} after the deadline")
        )
    for p in positions:
        if p.get("symbol") == symbol and Decimal(str(p.get("qty") or 0)) != 0:
            out.append(Violation("not_flat", f"broker reports {p.get('qty')} {symbol} at the end"))
    return out


def check_rate(
    requests: Sequence[Mapping[str, Any]], limit: int = 200, window: float = 60.0, exclude: str = ""
) -> list[Violation]:
    """`exclude`: a mark in the paths of requests that are not the bot's (a test's own load)."""
    stamps = sorted(
        float(r["ts"])
        for r in requests
        if int(r.get("status") or 0) != 429
        and str(r.get("path", "")).startswith("/v2")
        and not (exclude and exclude in str(r.get("path", "")))
    )
    lo = 0
    worst = 0
    worst_at = 0.0
    for hi, ts in enumerate(stamps):
        while stamps[lo] <= ts - window:
            lo += 1
        if hi - lo + 1 > worst:
            worst, worst_at = hi - lo + 1, ts
    if worst > limit:
        at = datetime.fromtimestamp(worst_at, timezone.utc)
        return [Violation("rate_limit", f"{worst} requests in the 60 s ending {_ny(at)}")]
    return []


def check_protected_at(
    orders: Sequence[Mapping[str, Any]],
    fills: Sequence[Mapping[str, Any]],
    symbol: str,
    moments: Sequence[datetime],
    kind: str = "sigterm",
) -> list[Violation]:
    """At each of `moments` (e.g. when a SIGTERM'd bot had exited), a position held must have a working
    stop on its closing side: a stop leg whose bracket had filled by then and that had not ended yet."""
    timeline = position_timeline(fills, symbol)
    first_fill: dict[str, datetime] = {}
    for f in fills:
        ts = parse_time(f["transaction_time"])
        oid = str(f["order_id"])
        first_fill[oid] = min(ts, first_fill.get(oid, ts))
    out: list[Violation] = []
    for at in moments:
        pos = _position_at(timeline, at)
        if pos == 0:
            continue
        closing = "sell" if pos > 0 else "buy"
        working = False
        for parent in orders:
            if parent.get("symbol") != symbol:
                continue
            started = first_fill.get(str(parent["id"]))
            for leg in _flatten(parent.get("legs") or ()):
                ended = _final_time(leg)
                if (
                    str(leg.get("type")).startswith("stop")
                    and leg.get("side") == closing
                    and started is not None
                    and started <= at
                    and (ended is None or ended > at)
                ):
                    working = True
        if not working:
            out.append(Violation(kind, f"{symbol} {pos} left at {_ny(at)} without a working stop"))
    return out


def check_signal_age(
    orders: Sequence[Mapping[str, Any]],
    bars: Sequence[Mapping[str, Any]],
    symbol: str,
    limit: timedelta = SIGNAL_AGE_LIMIT,
    pauses: Sequence[tuple[datetime, datetime]] = (),
) -> list[Violation]:
    """Each of our entries needs a bar that closed beyond its box level within `limit` before the broker
    received it. The level comes from the bracket: long stop = high - range and take-profit = high +
    range, both rounded down, so the high is at or above their midpoint and a long breakout's close is
    above it (a short's below, its legs rounded up). `bars`: the v2 bars JSON (t, c).

    A suspension that began after the bar had closed (`pauses`) may have caught the bot between its
    decision and the POST: that time is not the decision's. One that began before only delayed the
    bot's first sight of the bar, and counts (issue 16: the 15:37 bar, closed during a stall, traded
    after it)."""
    closes = sorted((parse_time(str(b["t"])) + timedelta(minutes=1), float(b["c"])) for b in bars)

    def age(closed: datetime, sent: datetime) -> timedelta:
        return sent - closed - _paused(closed, sent, [p for p in pauses if p[0] >= closed])

    out: list[Violation] = []
    for e in orders:
        if e.get("symbol") != symbol or not parse_client_order_id(str(e.get("client_order_id") or "")):
            continue
        side, take, stop = _box(e)
        if not take or not stop:
            continue
        level = (float(take) + float(stop)) / 2
        sent = parse_time(e["submitted_at"])
        fresh = [c for end, c in closes if end <= sent and age(end, sent) <= limit]
        if not any(c > level if side == "buy" else c < level for c in fresh):
            out.append(
                Violation(
                    "stale_entry",
                    f"{e['client_order_id']} sent {_ny(sent)}: no bar closed beyond {level:.4f} in the "
                    f"{limit.seconds} s before",
                )
            )
    return out


def _paused(start: datetime, end: datetime, pauses: Sequence[tuple[datetime, datetime]]) -> timedelta:
    """How much of [start, end] the bot spent suspended (the pauses may overlap the span's ends)."""
    total = timedelta(0)
    for a, b in pauses:
        lo, hi = max(a, start), min(b, end)
        if hi > lo:
            total += hi - lo
    return total


def check_order_sent(
    log_text: str,
    symbol: str,
    limit: timedelta = ORDER_SENT_LIMIT,
    pauses: Sequence[tuple[datetime, datetime]] = (),
) -> list[Violation]:
    """From the bot's log: its phase lines ('AAPL: searching -> order_sent at <ISO time>') and its start
    lines ('breakout-bot ... starting:'), which begin a new incarnation (one killed in order_sent says
    nothing of how long it would have waited). Time the bot spent suspended (`pauses`: the fault
    suite's stalls, the clock moving while the process could not run) does not count."""
    out: list[Violation] = []
    since: datetime | None = None
    head = f"{symbol}: "
    for line in log_text.splitlines():
        if " starting: mode " in line:
            since = None
            continue
        at = line.find(head)
        if at < 0 or " -> " not in line or " at " not in line:
            continue
        phases, _, when = line[at + len(head) :].partition(" at ")
        before, _, after = phases.partition(" -> ")
        try:
            ts = datetime.fromisoformat(when.strip())
        except ValueError:
            continue
        if before == "order_sent" and since is not None and ts - since - _paused(since, ts, pauses) > limit:
            out.append(Violation("order_sent_hang", f"{symbol} in order_sent {_ny(since)}-{_ny(ts)}"))
        since = ts if after == "order_sent" else None
    return out


def check_day(
    *,
    symbol: str,
    close: datetime,
    fills: Sequence[Mapping[str, Any]],
    orders: Sequence[Mapping[str, Any]],
    requests: Sequence[Mapping[str, Any]],
    positions: Sequence[Mapping[str, Any]],
    journal_raw: bytes | str,
    end: datetime,
    reconcile_interval: timedelta = timedelta(minutes=15),
    no_entry_minutes: int = 20,
    flatten_minutes: int = 5,
    grace: timedelta = timedelta(minutes=1),
    bars: Sequence[Mapping[str, Any]] | None = None,
    bot_log: str | None = None,
    pauses: Sequence[tuple[datetime, datetime]] = (),
    foreign_mark: str = "",
) -> list[Violation]:
    """Every invariant for one symbol over one simulated session (`bars` and `bot_log`, when given,
    add the issue 16 checks; `foreign_mark` marks request paths that are not the bot's)."""
    timeline = position_timeline(fills, symbol)
    return [
        *check_entries(orders, timeline, symbol, close, no_entry_minutes, requests, pauses),
        *check_journal(fills, journal_raw, symbol),
        *check_protection(orders, fills, timeline, symbol, end, reconcile_interval),
        *check_flat(timeline, close, flatten_minutes, grace, positions, symbol),
        *check_rate(requests, exclude=foreign_mark),
        *(check_signal_age(orders, bars, symbol, pauses=pauses) if bars is not None else []),
        *(check_order_sent(bot_log, symbol, pauses=pauses) if bot_log is not None else []),
    ]
