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
* ``late_entry``: an entry submitted with no more than ``no_entry_minutes`` left to the close;
* ``rate_limit``: more than 200 requests (429s not counted) inside some 60 s virtual window.
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
        if sent >= cutoff:
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
    requests: Sequence[Mapping[str, Any]], limit: int = 200, window: float = 60.0
) -> list[Violation]:
    stamps = sorted(
        float(r["ts"])
        for r in requests
        if int(r.get("status") or 0) != 429 and str(r.get("path", "")).startswith("/v2")
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
) -> list[Violation]:
    """Every invariant for one symbol over one simulated session."""
    timeline = position_timeline(fills, symbol)
    return [
        *check_entries(orders, timeline, symbol, close, no_entry_minutes),
        *check_journal(fills, journal_raw, symbol),
        *check_protection(orders, fills, timeline, symbol, end, reconcile_interval),
        *check_flat(timeline, close, flatten_minutes, grace, positions, symbol),
        *check_rate(requests),
    ]
