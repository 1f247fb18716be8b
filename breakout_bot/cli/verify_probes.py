"""The probes of `breakout-bot verify`: what the bot assumes about Alpaca, asked of the user's own paper
account (docs/simulator.md lists each assumption with its public source; the research notes what could
not be settled offline). Each probe records one `Check`: the assumption, what was expected, what was
observed, and whether the bot relies on it (`critical`).

Outside market hours only what needs no fill is asked: the account and asset fields, the clock and
calendar, the bodies of a sub-penny and a base-price 422, a far limit order's listing, duplicate id and
cancel, the 401 body, and the data stream's one-connection rule and auth timeout. In market hours one
share is bought twice with a bracket whose legs are far away (10 %): where its stop leg is listed after
the fill, the 403 a close meets while the legs hold the shares, one canceled leg canceling the group (and
how long a cancel takes), the FILL activity against the stream's event, and the flatten's way out
(replacing the take-profit by a marketable limit while the stop keeps working).

Every order sent carries a `bbverify-` client order id and is canceled afterwards, and every share
bought is sold again (`cleanup`, run whatever happens, Ctrl-C included).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import requests
from websockets.client import connect as ws_connect

from ..broker.alpaca.rest import AlpacaRest
from ..core.ticks import round_to_tick
from ..errors import BrokerError, BrokerNotFound, BrokerRejected, InsufficientQty
from .stop_signals import raise_if_lost

FAR = 0.10  # the market-hours brackets' legs: this far from the price (a 'limit price away' check exists)
POLL_S = 0.25  # Alpaca's budget is 200 requests a minute (the client throttle keeps under 190)


@dataclass
class Check:
    name: str
    expected: str
    observed: str
    ok: bool
    critical: bool = True  # does the bot rely on it (a ✘ makes verify exit 1)?
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        mark = "✔" if self.ok else "✘"
        note = "" if self.ok or self.critical else " (the bot copes either way)"
        return f"{mark} {self.name}: expected {self.expected} → observed {self.observed}{note}"


def _body(exc: BrokerError) -> dict[str, Any]:
    """What a refusal said: status, code, message and the context fields."""
    if isinstance(exc, BrokerRejected):
        return {"status": exc.status, "code": exc.code, "message": str(exc), **exc.details}
    return {"error": type(exc).__name__, "message": str(exc)}


def ws_url(http_url: str, path: str) -> str:
    return http_url.rstrip("/").replace("https://", "wss://").replace("http://", "ws://") + path


class TradeStreamRecorder:
    """The raw trade_updates messages (which fields each event carries), on its own thread."""

    def __init__(self, base_url: str, key: str, secret: str) -> None:
        self.url = ws_url(base_url, "/stream")
        self.key, self.secret = key, secret
        self.events: list[tuple[float, dict[str, Any]]] = []  # (monotonic, data)
        self.ready = threading.Event()
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="verify-trade-stream", daemon=True)

    def start(self, timeout: float = 10.0) -> bool:
        self._thread.start()
        return self.ready.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            asyncio.run(self._listen())
        except Exception as exc:  # reported as a check, never raised
            self.error = f"{type(exc).__name__}: {exc}"
            self.ready.set()

    async def _listen(self) -> None:
        async with ws_connect(self.url) as ws:
            auth = {"action": "authenticate", "data": {"key_id": self.key, "secret_key": self.secret}}
            await ws.send(json.dumps(auth))
            await ws.recv()
            await ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
            await ws.recv()
            self.ready.set()
            while not self._stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.2)
                except asyncio.TimeoutError:
                    continue
                msg = json.loads(raw)
                if isinstance(msg, dict) and msg.get("stream") == "trade_updates":
                    self.events.append((time.monotonic(), dict(msg["data"])))

    def of(self, order_id: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, d) for t, d in list(self.events) if d.get("order", {}).get("id") == order_id]


class Verifier:
    def __init__(
        self,
        rest: AlpacaRest,
        base_url: str,
        data_stream_url: str,
        key: str,
        secret: str,
        symbol: str,
        feed: str,
        timeout: float,
        say: Callable[[str], None] = print,
    ) -> None:
        self.rest = rest
        self.base_url = base_url.rstrip("/")
        self.data_stream_url = data_stream_url
        self.key, self.secret = key, secret
        self.symbol = symbol
        self.feed = feed
        self.timeout = timeout
        self.say = say
        self.checks: list[Check] = []
        self.created: list[str] = []  # ids of every order sent (and of the legs and replacements)
        self.stream: TradeStreamRecorder | None = None
        self.market_open = False
        self._n = 0
        self._stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S")

    # ------------------------------------------------------------------ plumbing
    def record(self, check: Check) -> Check:
        raise_if_lost()  # a Ctrl-C or SIGTERM dropped inside a finalizer stops verify here
        self.checks.append(check)
        self.say(check.line())
        return check

    def cid(self) -> str:
        self._n += 1
        return f"bbverify-{self._stamp}-{self._n}"

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        row = dict(self.rest.post(f"POST /v2/orders {body.get('client_order_id')}", "/orders", body))
        self.created.append(str(row["id"]))
        return row

    def order(self, order_id: str) -> dict[str, Any]:
        return dict(self.rest.get("GET /v2/orders/{id}", f"/orders/{order_id}", {"nested": "true"}))

    def one_share_bracket(self, take_profit: float, stop: float) -> dict[str, Any]:
        """A market buy of one share with its two legs (prices on the tick)."""
        return {
            "symbol": self.symbol,
            "qty": "1",
            "side": "buy",
            "type": "market",
            "time_in_force": "day",
            "order_class": "bracket",
            "take_profit": {"limit_price": str(round_to_tick(take_profit, "down"))},
            "stop_loss": {"stop_price": str(round_to_tick(stop, "down"))},
            "client_order_id": self.cid(),
        }

    def refusal(
        self,
        name: str,
        expected: str,
        send: Callable[[], object],
        judge: Callable[[BrokerRejected], bool],
        describe: Callable[[BrokerRejected], str],
        critical: bool = True,
    ) -> Check:
        """A request the broker should refuse: how it did (an order accepted instead is canceled later)."""
        try:
            send()
            observed, ok, details = "accepted (!)", False, {}
        except BrokerRejected as exc:
            details, ok, observed = _body(exc), judge(exc), describe(exc)
        return self.record(Check(name, expected, observed, ok, critical, details))

    def wait(self, cond: Callable[[], bool], seconds: float | None = None) -> bool:
        deadline = time.monotonic() + (self.timeout if seconds is None else seconds)
        while time.monotonic() < deadline:
            if cond():
                return True
            raise_if_lost()
            time.sleep(POLL_S)
        return cond()

    def last_price(self) -> float:
        row = self.rest.data_get(
            f"GET /v2/stocks/{self.symbol}/trades/latest",
            f"/stocks/{self.symbol}/trades/latest",
            {"feed": self.feed},
        )
        return float(row["trade"]["p"])

    def position_qty(self) -> Decimal:
        try:
            row = self.rest.get(f"GET /v2/positions/{self.symbol}", f"/positions/{self.symbol}")
        except BrokerNotFound:
            return Decimal(0)
        return Decimal(str(row["qty"]))

    def listing(self, status: str, nested: bool) -> list[dict[str, Any]]:
        params = {
            "status": status,
            "nested": "true" if nested else "false",
            "symbols": self.symbol,
            "limit": 500,
        }
        return list(self.rest.get("GET /v2/orders", "/orders", params) or [])

    # ------------------------------------------------------------------ the run
    def run(self) -> list[Check]:
        self.account_and_asset()
        self.clock_and_calendar()
        price = self.last_price()
        self.sub_penny(price)
        self.base_price(price)
        self.resting_order(price)
        self.unauthorized()
        self.data_stream()
        if self.market_open:
            self.market_hours()
        else:
            self.say("· the market is closed: the checks that need a fill run during market hours")
        return self.checks

    # ------------------------------------------------------------------ outside market hours
    def account_and_asset(self) -> None:
        acct = dict(self.rest.get("GET /v2/account", "/account"))
        legacy = sorted(
            k for k in ("pattern_day_trader", "daytrade_count", "daytrading_buying_power") if k in acct
        )
        self.record(
            Check(
                "the account has no pattern-day-trader fields (removed 2026-07-06)",
                "absent",
                ", ".join(legacy) + " present (legacy PDT refusals 40310100 may come)"
                if legacy
                else "absent",
                not legacy,
                critical=False,
                details={
                    k: acct.get(k)
                    for k in ("multiplier", "shorting_enabled", "equity", "buying_power", *legacy)
                },
            )
        )
        asset = dict(self.rest.get(f"GET /v2/assets/{self.symbol}", f"/assets/{self.symbol}"))
        flags = {k: asset.get(k) for k in ("tradable", "shortable", "easy_to_borrow", "borrow_status")}
        self.record(
            Check(
                f"{self.symbol} carries shortable and easy_to_borrow (re-read each session)",
                "both booleans present",
                ", ".join(f"{k}={v}" for k, v in flags.items()),
                isinstance(flags["shortable"], bool) and isinstance(flags["easy_to_borrow"], bool),
                details=flags,
            )
        )

    def clock_and_calendar(self) -> None:
        clock = dict(self.rest.get("GET /v2/clock", "/clock"))
        self.market_open = bool(clock["is_open"])
        today = str(clock["timestamp"])[:10]
        cal = list(self.rest.get("GET /v2/calendar", "/calendar", {"start": today, "end": today}) or [])
        agrees = bool(cal) == self.market_open or not self.market_open
        self.record(
            Check(
                "the clock and the calendar agree on today's session",
                "open only on a calendar day",
                f"is_open={clock['is_open']}, calendar rows today={len(cal)}",
                agrees,
                details={"clock": clock, "calendar": cal},
            )
        )

    def sub_penny(self, price: float) -> None:
        limit = f"{max(1.0, round(price * 0.5, 2)):.2f}1"  # three decimals above $1: sub-penny
        body = {"symbol": self.symbol, "qty": "1", "side": "buy", "type": "limit", "time_in_force": "day"}
        self.refusal(
            "a sub-penny limit is refused with 422 / 42210000",
            "422 sub-penny",
            lambda: self.post({**body, "limit_price": limit, "client_order_id": self.cid()}),
            lambda exc: exc.status == 422 and "sub-penny" in str(exc),
            lambda exc: f"{exc.status} {exc.code}: {str(exc)[:90]}",
            critical=False,
        )

    def base_price(self, price: float) -> None:
        """A market bracket whose stop sits above the price: refused with the base price in the body."""
        body = self.one_share_bracket(price * 1.02, price * 1.01)
        check = self.refusal(
            "a bracket with its stop above the price: 422 with base_price",
            "422 + base_price",
            lambda: self.post(body),
            lambda exc: exc.status == 422 and "base_price" in exc.details,
            lambda exc: f"{exc.status}, base_price {exc.details.get('base_price')} (last trade {price:g})",
        )
        check.details["last_trade"] = price

    def resting_order(self, price: float) -> None:
        """A far limit buy: its POST answer, a duplicate id, the lookup by id, the buying power it
        reserves, and its cancel's timing."""
        cid = self.cid()
        limit = str(round_to_tick(price * 0.5, "down"))
        body = {"symbol": self.symbol, "qty": "1", "side": "buy", "type": "limit", "limit_price": limit}
        bp_before = float(dict(self.rest.get("GET /v2/account", "/account"))["buying_power"])
        row = self.post({**body, "time_in_force": "day", "client_order_id": cid})
        status = str(row["status"])
        self.record(
            Check(
                "POST /v2/orders answers accepted, pending_new or new",
                "accepted | pending_new | new",
                status,
                status in ("accepted", "pending_new", "new"),
            )
        )
        self.refusal(
            "a second order with the same client_order_id: 422 must be unique",
            "422",
            lambda: self.rest.post(
                "POST /v2/orders (same id)",
                "/orders",
                {**body, "time_in_force": "day", "client_order_id": cid},
            ),
            lambda exc: exc.status == 422 and "client_order_id must be unique" in str(exc),
            lambda exc: f"{exc.status} {exc.code}",
        )
        found = self.rest.get(
            "GET /v2/orders:by_client_order_id", "/orders:by_client_order_id", {"client_order_id": cid}
        )
        try:
            self.rest.get(
                "GET /v2/orders:by_client_order_id",
                "/orders:by_client_order_id",
                {"client_order_id": cid + "-none"},
            )
            missing = "found (!)"
        except BrokerNotFound as exc:
            missing = f"404 ({str(exc)[:60]})"
        self.record(
            Check(
                "lookup by client_order_id: ours found, an unknown one 404",
                "found, 404",
                f"{'found' if found.get('id') == row['id'] else 'not found'}, {missing}",
                found.get("id") == row["id"] and missing.startswith("404"),
            )
        )
        bp_during = float(dict(self.rest.get("GET /v2/account", "/account"))["buying_power"])
        drop = bp_before - bp_during
        self.record(
            Check(
                "an open buy order reserves buying power",
                f"a drop of about {limit}",
                f"{drop:.2f}",
                drop >= float(limit) * 0.99,
                critical=False,
                details={"before": bp_before, "during": bp_during},
            )
        )
        took, seen = self.cancel_and_time(str(row["id"]))
        self.record(
            Check(
                "a cancel is processed soon (DELETE 204 → canceled)",
                "within seconds",
                f"{took * 1000:.0f} ms" + (", pending_cancel seen" if seen else "")
                if took >= 0
                else "not canceled in time",
                0 <= took < self.timeout,
                critical=False,
            )
        )

    def cancel_and_time(self, order_id: str, ids: tuple[str, ...] = ()) -> tuple[float, bool]:
        """DELETE one order and wait until it (and `ids`) are canceled: (seconds, pending_cancel seen)."""
        t0 = time.monotonic()
        self.rest.delete(f"DELETE /v2/orders/{order_id}", f"/orders/{order_id}")
        statuses: set[str] = set()

        def done() -> bool:
            rows = [self.order(i) for i in (order_id, *ids)]
            statuses.update(str(r["status"]) for r in rows)
            return all(r["status"] in ("canceled", "filled", "expired") for r in rows)

        if not self.wait(done, 30):
            return -1.0, "pending_cancel" in statuses
        return time.monotonic() - t0, "pending_cancel" in statuses

    def unauthorized(self) -> None:
        headers = {"APCA-API-KEY-ID": self.key, "APCA-API-SECRET-KEY": "wrong-" + self.secret[-4:]}
        resp = requests.get(f"{self.base_url}/v2/account", headers=headers, timeout=10)
        kind = "JSON" if resp.headers.get("Content-Type", "").startswith("application/json") else "not JSON"
        self.record(
            Check(
                "a wrong secret is 401 (the only 'bad keys' answer)",
                "401",
                f"{resp.status_code}, {kind}: {resp.text[:60]!r}",
                resp.status_code == 401,
                details={"status": resp.status_code, "body": resp.text[:300]},
            )
        )

    def data_stream(self) -> None:
        url = ws_url(self.data_stream_url, f"/v2/{self.feed}")
        auth = json.dumps({"action": "auth", "key": self.key, "secret": self.secret})

        async def first_reply(ws: Any) -> Any:
            await asyncio.wait_for(ws.recv(), 10)  # connected
            await ws.send(auth)
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

        async def two() -> tuple[Any, Any]:
            async with ws_connect(url) as one:
                a = await first_reply(one)
                async with ws_connect(url) as second:
                    b = await first_reply(second)
            return a, b

        async def silent() -> tuple[Any, float]:
            t0 = time.monotonic()
            async with ws_connect(url) as ws:
                await asyncio.wait_for(ws.recv(), 10)
                reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
            return reply, time.monotonic() - t0

        try:
            a, b = asyncio.run(two())
            code = b[0].get("code") if isinstance(b, list) and b else None
            self.record(
                Check(
                    f"a second data-stream connection on {self.feed} is refused (406)",
                    "406 connection limit exceeded",
                    f"first {a[0].get('msg')}, second {code} {b[0].get('msg')}",
                    code == 406,
                    critical=False,
                    details={"first": a, "second": b},
                )
            )
            reply, took = asyncio.run(silent())
            code = reply[0].get("code") if isinstance(reply, list) and reply else None
            self.record(
                Check(
                    "a client that does not authenticate gets 404 auth timeout",
                    "404 within seconds",
                    f"{code} after {took:.1f} s",
                    code == 404,
                    critical=False,
                    details={"reply": reply, "seconds": took},
                )
            )
        except Exception as exc:  # a network problem is a finding, not a crash
            self.record(
                Check(
                    "the market-data websocket answers",
                    "a reply",
                    f"{type(exc).__name__}: {exc}",
                    False,
                    False,
                )
            )

    # ------------------------------------------------------------------ market hours
    def market_hours(self) -> None:
        if self.position_qty() != 0 or self.listing("open", nested=False):
            self.record(
                Check(
                    f"{self.symbol} is free for the market-hours checks",
                    "no position, no open order",
                    "busy: run with another --symbol",
                    False,
                    critical=False,
                )
            )
            return
        self.stream = TradeStreamRecorder(self.base_url, self.key, self.secret)
        if not self.stream.start():
            self.say(f"· trade stream unavailable ({self.stream.error}): stream checks skipped")
        parent, tp, sl = self.bracket()
        if parent is None:
            return
        self.held_leg(parent, tp, sl)
        self.close_while_held()
        self.cancel_one_leg(tp, sl)
        self.close_and_compare()
        self.wire_details(parent)
        self.flatten_by_replace()

    def bracket(self) -> tuple[dict[str, Any] | None, str, str]:
        """One share, legs FAR away; waits for the fill."""
        price = self.last_price()
        row = self.post(self.one_share_bracket(price * (1 + FAR), price * (1 - FAR)))
        oid = str(row["id"])
        for leg in row.get("legs") or []:
            self.created.append(str(leg["id"]))
        filled = self.wait(lambda: self.order(oid)["status"] == "filled")
        if not filled:
            self.record(
                Check("a one-share market bracket fills", f"within {self.timeout:g} s", "no fill", False)
            )
            return None, "", ""
        parent = self.order(oid)
        legs = {
            ("tp" if leg["type"] == "limit" else "sl"): str(leg["id"]) for leg in parent.get("legs") or []
        }
        return parent, legs.get("tp", ""), legs.get("sl", "")

    def held_leg(self, parent: dict[str, Any], tp: str, sl: str) -> None:
        sl_status = self.order(sl)["status"]
        tp_status = self.order(tp)["status"]
        self.record(
            Check(
                "after the fill the take-profit is new and the stop-loss stays held",
                "new / held",
                f"{tp_status} / {sl_status}",
                tp_status == "new" and sl_status == "held",
                critical=False,
            )
        )

        def ids(rows: list[dict[str, Any]]) -> set[str]:
            out: set[str] = set()
            for r in rows:
                out.add(str(r["id"]))
                out |= ids(r.get("legs") or [])
            return out

        open_ids = ids(self.listing("open", False)) | ids(self.listing("open", True))
        under_parent = [
            leg["status"]
            for r in self.listing("all", True)
            if str(r["id"]) == parent["id"]
            for leg in r.get("legs") or []
            if str(leg["id"]) == sl
        ]
        self.record(
            Check(
                "the held stop is not in status=open, but nested under its parent in status=all",
                "absent / present",
                f"{'present' if sl in open_ids else 'absent'} / {'present' if under_parent else 'absent'}",
                bool(under_parent),  # the bot reads it there; open or not, it counts
                details={"in_open": sl in open_ids, "under_parent": under_parent},
            )
        )

    def close_while_held(self) -> None:
        def close() -> None:
            path = f"/positions/{self.symbol}"
            self.created.append(str(self.rest.delete(f"DELETE /v2{path}", path, {"qty": "1"})["id"]))

        self.refusal(
            "a close while the legs hold the shares: 403 insufficient qty (held_for_orders)",
            "403",
            close,
            lambda exc: isinstance(exc, InsufficientQty),
            lambda exc: f"{exc.status} held_for_orders {exc.details.get('held_for_orders')}",
        )

    def cancel_one_leg(self, tp: str, sl: str) -> None:
        took, seen = self.cancel_and_time(tp, (sl,))
        sl_status = self.order(sl)["status"]
        self.record(
            Check(
                "canceling the take-profit cancels the stop-loss too (one leg cancels the group)",
                "canceled",
                f"{sl_status} after {took * 1000:.0f} ms" + (", pending_cancel seen" if seen else ""),
                sl_status == "canceled",
                details={"ms": round(took * 1000), "pending_cancel": seen},
            )
        )

    def close_and_compare(self) -> None:
        row = dict(
            self.rest.delete(f"DELETE /v2/positions/{self.symbol}", f"/positions/{self.symbol}", {"qty": "1"})
        )
        oid = str(row["id"])
        self.created.append(oid)
        if not self.wait(lambda: self.order(oid)["status"] == "filled"):
            self.record(Check("the close fills", f"within {self.timeout:g} s", "no fill", False))
            return
        acts = list(
            self.rest.get(
                "GET /v2/account/activities/FILL",
                "/account/activities/FILL",
                {"direction": "desc", "page_size": 50},
            )
            or []
        )
        act = next((a for a in acts if a.get("order_id") == oid), None)
        stream_ids = [
            d.get("execution_id")
            for _, d in (self.stream.of(oid) if self.stream else [])
            if d.get("event") == "fill"
        ]
        suffix = str(act["id"]).split("::", 1)[-1] if act else None
        self.record(
            Check(
                "a FILL activity's id ends with the stream's execution_id",
                "equal",
                f"activity {suffix}, stream {stream_ids[0] if stream_ids else None}",
                bool(stream_ids) and suffix == stream_ids[0],
                critical=False,  # the ledger also keys fills by (order id, cumulative qty)
                details={"activity": act, "stream_execution_ids": stream_ids},
            )
        )

    def wire_details(self, parent: dict[str, Any]) -> None:
        if self.stream is None or not self.stream.ready.is_set() or self.stream.error:
            return
        events = [d for _, d in self.stream.events]
        no_ts = [d["event"] for d in events if not d.get("timestamp")]
        self.record(
            Check(
                "every trade_updates event carries a timestamp",
                "all",
                "all" if not no_ts else f"missing on {sorted(set(no_ts))}",
                not no_ts,
                critical=False,
            )
        )
        ids = {d["event"]: bool(d.get("execution_id")) for d in events}
        self.record(
            Check(
                "execution_id on new and fill, not on accepted / pending_new",
                "new, fill: yes; accepted, pending_new: no",
                ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in sorted(ids.items())),
                ids.get("fill", False),
                critical=False,
                details={"events": sorted(ids)},
            )
        )

    def flatten_by_replace(self) -> None:
        """The bot's flatten: the take-profit replaced by a marketable limit a cent above the stop at
        worst; the position closes while the stop stays working."""
        parent, tp, sl = self.bracket()
        if parent is None:
            return
        price = self.last_price()
        stop = float(self.order(sl)["stop_price"])
        limit = max(round_to_tick(price * 0.99, "down"), Decimal(str(stop)) + Decimal("0.01"))
        try:
            new = dict(
                self.rest.patch(
                    f"PATCH /v2/orders/{tp}",
                    f"/orders/{tp}",
                    {"limit_price": str(limit), "client_order_id": self.cid()},
                )
            )
        except BrokerError as exc:
            self.record(
                Check("the take-profit can be replaced by a marketable limit", "200", f"{_body(exc)}", False)
            )
            return
        self.created.append(str(new["id"]))
        closed = self.wait(lambda: self.position_qty() == 0)
        sl_status = self.order(sl)["status"]
        self.record(
            Check(
                "replacing the take-profit by a marketable limit closes the position, the stop working until then",
                "flat, stop canceled by the fill",
                f"{'flat' if closed else 'still holding'}, stop {sl_status}",
                closed and sl_status == "canceled",
                details={"limit": str(limit), "new_order": new.get("id")},
            )
        )

    # ------------------------------------------------------------------ cleanup
    def cleanup(self) -> list[str]:
        """Cancel every order sent that is still open, then sell what our orders bought (read from the
        broker: an interrupt may come before we saw a fill)."""
        notes: list[str] = []
        net = Decimal(0)
        for oid in list(dict.fromkeys(self.created)):
            try:
                row = self.order(oid)
            except BrokerError:
                continue
            filled = Decimal(str(row.get("filled_qty") or 0))
            net += filled if row.get("side") == "buy" else -filled
            if row["status"] not in ("filled", "canceled", "expired", "rejected", "replaced"):
                with contextlib.suppress(BrokerError):
                    self.rest.delete(f"DELETE /v2/orders/{oid}", f"/orders/{oid}")
                    notes.append(f"canceled {oid}")
        deadline = time.monotonic() + 15
        while net > 0:
            try:
                row = self.rest.delete(
                    f"DELETE /v2/positions/{self.symbol}", f"/positions/{self.symbol}", {"qty": str(net)}
                )
                notes.append(f"sold the {net} share(s) verify bought")
                break
            except (InsufficientQty, BrokerNotFound) as exc:
                if isinstance(exc, BrokerNotFound) or time.monotonic() > deadline:
                    notes.append(
                        f"could not sell the {net} share(s) verify bought ({exc}): close them by hand"
                    )
                    break
                time.sleep(0.5)  # the canceled legs still hold the shares
            except BrokerError as exc:
                notes.append(f"could not sell the {net} share(s) verify bought ({exc}): close them by hand")
                break
        if self.stream is not None:
            self.stream.stop()
        return notes

    def report(self) -> dict[str, Any]:
        return {
            "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "base_url": self.base_url,
            "symbol": self.symbol,
            "feed": self.feed,
            "market_open": self.market_open,
            "checks": [asdict(c) for c in self.checks],
        }
