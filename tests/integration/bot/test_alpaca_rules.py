"""Issue 15: the real bot against the simulator's Alpaca rules. A mid-trade reconcile with the held stop
leg never flattens; the flatten keeps the stop working until the exit fills, also against slow cancels,
and without a take-profit waits for the cancels rather than hammering a 403; a refused close is
re-protected and retried; a hard-to-borrow day skips shorts; a price that moved before the entry gets a
422 and the bot searches again; a bar stream refused with 406 stops and the minute poll trades on; a
data plan refusal mid-session is one line, not a crash; the IEX feed's gaps keep the guide's box."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from breakout_bot.core import strategy
from breakout_bot.core.model import NEW_YORK, Bar
from breakout_bot.core.params import Params
from breakout_bot.sim.models import Order

from .harness import DAY, QUIET, SYMBOL, hm, ny, session
from .test_scenarios import ENTRY_1, HOLD, buy_before_start, long_then

LONG_AT_10 = {"10:00": (100.0, 100.7, 99.9, 100.6)}  # closes 100.60 > 100.50: long at 10:01


def at(hhmm: str) -> dt.datetime:
    return dt.datetime.combine(DAY, hm(hhmm), NEW_YORK)


def _closes_before(s, when: float) -> list[Order]:  # type: ignore[no-untyped-def]
    """Orders that would close the long (sells that are not the bracket's own legs) created before `when`."""
    entry_ids = {e.id for e in s.entries()}
    return [o for o in s.orders if o.side == "sell" and o.parent_id not in entry_ids and o.created_at < when]


def test_a_reconcile_in_the_middle_of_a_trade_never_flattens(tmp_path) -> None:
    """Held for an hour (four 15-minute reconciles and one after a dropped trade stream), the bracket's stop
    stays `held` at Alpaca, hidden from status=open: it still counts as the position's protection."""
    bars, after = long_then("11:05")
    with session(tmp_path, bars, after=after) as s:
        seen_held: list[str] = []
        dropped: list[int] = []

        def watch(r) -> bool:  # type: ignore[no-untyped-def]
            if r.states[SYMBOL].position_qty != 0:
                entry = s.entries()[0]
                stop = s.legs(entry)["stop_loss"]
                seen_held.append(stop.status)
                if not dropped and s.clock.now() >= at("10:30"):
                    dropped.append(s.server.control.drop_streams("trading"))
            return False

        s.run(stop_when=watch)
        entry = s.entries()[0]
        legs = s.legs(entry)
        assert dropped and set(seen_held) == {"held"}
        assert legs["take_profit"].status == "filled" and ny(legs["take_profit"].filled_at).time() >= hm(
            "11:05"
        )
        assert _closes_before(s, legs["take_profit"].filled_at) == []  # never flattened
        reconciles = [r for r in s.server.exchange.requests if r.path == "/v2/orders" and r.method == "GET"]
        assert len([r for r in reconciles if entry.filled_at < r.t < legs["take_profit"].filled_at]) >= 8
        s.check_invariants()


@pytest.mark.parametrize("cancel_ms", [300, 5000])
def test_the_flatten_keeps_the_stop_working_until_the_exit_fills(tmp_path, cancel_ms: int) -> None:
    with session(tmp_path, {"15:30": LONG_AT_10["10:00"]}, after={"15:31": HOLD}) as s:
        s.server.control.set_cancel_latency(cancel_ms)
        s.run()
        (entry,) = s.entries()
        flatten = next(o for o in s.orders if "-flat-" in o.client_order_id)
        stop = s.legs(entry)["stop_loss"]
        assert flatten.status == "filled" and ny(flatten.filled_at) < at("15:55") + dt.timedelta(seconds=15)
        assert stop.canceled_at == flatten.filled_at  # working (held) until the exit filled: OCO
        assert not any(
            r.method == "DELETE" for r in s.server.exchange.requests if r.path.startswith("/v2/orders")
        )
        s.check_invariants()


def test_without_a_take_profit_the_close_waits_for_the_cancel(tmp_path) -> None:
    """A position protected by a plain stop (not ours): the flatten cancels it (slow: 3 s, pending_cancel)
    and closes when the cancel is done, retrying within a second, not every 30 s."""
    with session(tmp_path) as s:
        s.server.control.set_cancel_latency(3000)
        buy_before_start(s, stop=95.0)
        s.run()
        stop = next(o for o in s.orders if o.type == "stop")
        close = next(o for o in s.orders if o.type == "market" and o.side == "sell")
        assert stop.status == "canceled" and close.status == "filled"
        assert ny(stop.canceled_at) - at("15:55") < dt.timedelta(seconds=6)
        assert close.created_at >= stop.canceled_at  # sent once the shares were free
        assert close.filled_at - stop.canceled_at < 16  # unprotected only until the next trade
        attempts = [
            r
            for r in s.server.exchange.requests
            if r.method == "DELETE" and r.path == f"/v2/positions/{SYMBOL}"
        ]
        assert 1 <= len(attempts) <= 6 and attempts[-1].status == 200
        assert [r.status for r in attempts[:-1]] == [403] * (len(attempts) - 1)
        s.check_invariants()


def test_a_refused_close_is_re_protected_and_retried(tmp_path, caplog) -> None:
    """An unprotected position whose close Alpaca refuses (403, twice): the bot sends a stop of its own,
    says why in one line each time, retries, and ends flat; it never exits holding the position."""
    with session(tmp_path) as s:
        buy_before_start(s, stop=None)
        s.server.control.inject_http_fault(403, count=2, paths=f"/v2/positions/{SYMBOL}", method="DELETE")
        with caplog.at_level(logging.WARNING, logger="breakout_bot"):
            s.run()
        stops = [o for o in s.orders if o.type == "stop" and o.time_in_force == "gtc"]
        assert stops and stops[0].side == "sell" and stops[0].qty == 100
        assert "not accepted" in caplog.text and "sending a stop" in caplog.text
        assert s.position() == 0
        s.check_invariants()


def test_no_short_on_a_hard_to_borrow_day(tmp_path, caplog) -> None:
    short = {"10:00": (100.0, 100.1, 99.3, 99.4)}
    with session(tmp_path, short) as s:
        s.server.control.set_easy_to_borrow({SYMBOL: False})
        with caplog.at_level(logging.INFO, logger="breakout_bot"):
            s.run()
        assert s.entries() == []
        assert caplog.text.count("not easy to borrow today") == 1
        s.check_invariants()


def test_a_price_that_moved_before_the_entry_is_refused_and_the_bot_searches_again(tmp_path, caplog) -> None:
    bars = {**LONG_AT_10, "10:20": (100.5, 101.0, 100.4, 100.9)}  # a second breakout later
    with session(tmp_path, bars, after={"10:01": QUIET, "10:21": QUIET}) as s:
        drifted: list[bool] = []

        def drift(r) -> bool:  # type: ignore[no-untyped-def]
            if not drifted and s.clock.now() >= at("09:59:30"):  # before the 10:01 entry
                s.server.control.drift_next_order(1.5)  # 100.60 -> 102.11: past the 101.50 take-profit
                drifted.append(True)
            return False

        with caplog.at_level(logging.WARNING, logger="breakout_bot"):
            s.run(stop_when=drift)
        refused = [r for r in s.server.exchange.requests if r.method == "POST" and r.status == 422]
        assert len(refused) == 1
        assert "base_price" in caplog.text and "searching again" in caplog.text
        assert [e.client_order_id for e in s.entries()] == [f"bb-{SYMBOL}-20240304-2"]  # the next breakout
        s.check_invariants()


def test_a_bar_stream_refused_with_406_stops_and_the_poll_trades_on(tmp_path, caplog) -> None:
    bars = {**LONG_AT_10, "10:01": (100.6, 101.6, 100.5, 101.0)}
    with session(tmp_path, bars) as s:
        s.server.control.set_data_connection_limit(True)  # another client holds the one connection
        with caplog.at_level(logging.INFO, logger="breakout_bot"):
            s.run(bars_stream=True)
        assert caplog.text.count("bar stream stopped") == 1 and "406" in caplog.text
        connects = [
            r for r in caplog.records if "bar stream" in r.getMessage() and "reconnect" in r.getMessage()
        ]
        assert connects == []  # no reconnect storm
        assert [e.client_order_id for e in s.entries()] == [ENTRY_1]
        s.check_invariants()


def test_a_data_plan_refusal_mid_session_is_one_line_not_a_crash(tmp_path, caplog) -> None:
    bars = {"10:40": LONG_AT_10["10:00"]}
    with session(tmp_path, bars, after={"10:41": HOLD}) as s:
        switched: list[bool] = []

        def downgrade(r) -> bool:  # type: ignore[no-untyped-def]
            if not switched and r.states[SYMBOL].position_qty != 0:
                s.server.control.set_free_plan(True)  # the plan lost its SIP subscription
                switched.append(True)
            return False

        with caplog.at_level(logging.WARNING, logger="breakout_bot"):
            s.run(stop_when=downgrade)
        assert switched and caplog.text.count("--feed iex") == 1
        assert [r["leg"] for r in s.journal()] == ["entry", "flatten"]  # the trade still flattened
        s.check_invariants()


def test_on_the_gappy_iex_feed_the_box_is_the_last_ten_bars_that_exist(tmp_path) -> None:
    bars = {"10:00": (100.0, 100.9, 99.9, 100.8), "10:01": (100.8, 101.9, 100.7, 101.5)}
    with session(tmp_path, bars, feed="iex") as s:
        s.run()
        (entry,) = s.entries()[:1]
        sim_day = s.server.exchange.source.day(SYMBOL, s.server.exchange.calendar.session_on_or_after(DAY))
        iex = s.server.exchange.feed_day(sim_day, "iex")
        assert len(iex) < len(sim_day)  # minutes without an IEX print have no bar
        seen = [
            Bar(dt.datetime.fromtimestamp(float(t), NEW_YORK), float(o), float(h), float(lo), float(c))
            for t, o, h, lo, c in zip(iex.t, iex.o, iex.h, iex.low, iex.c, strict=True)
            if float(t) + 60 <= entry.created_at
        ]
        signal = seen[-1]
        box = strategy.compute_box(seen[-11:-1], Params().min_range_pct)  # the ten bars before the signal
        assert box.end - box.start >= dt.timedelta(minutes=10)
        expected = strategy.bracket_prices(box, entry.side)  # type: ignore[arg-type]
        legs = s.legs(entry)
        assert signal.close > box.high or signal.close < box.low
        assert (legs["stop_loss"].stop_price, legs["take_profit"].limit_price) == (
            float(expected.stop_price),
            float(expected.take_profit_price),
        )
        s.check_invariants()
