"""Issue 5 "done when": the real bot against the simulator, scenario by scenario.

Every scenario checks the simulator's own records (orders, executions, positions) and the journal,
plus the invariants in `Session.check_invariants` (one entry at a time, every execution journaled once,
flat at the end).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from breakout_bot.core import strategy
from breakout_bot.core.model import Bar, Box
from breakout_bot.core.params import Params
from breakout_bot.sim.orders import parse_order_request

from .harness import DAY, QUIET, SYMBOL, hm, ny, session

ENTRY_1 = f"bb-{SYMBOL}-20240304-1"


def _box(base: tuple[float, float, float, float] = QUIET, pct: float = 0.3) -> Box:
    import datetime as dt

    o, h, lo, c = base
    t = dt.datetime(2024, 3, 4, 9, 30)
    return strategy.compute_box([Bar(t, o, h, lo, c)] * 10, pct)


def _assert_bracket(entry, legs, side: str, box: Box) -> None:
    expected = strategy.bracket_prices(box, side)  # type: ignore[arg-type]
    assert entry.side == side and entry.qty == 100 and entry.order_class == "bracket"
    assert entry.type == "market" and entry.time_in_force == "day"
    assert Decimal(str(legs["take_profit"].limit_price)) == expected.take_profit_price
    assert Decimal(str(legs["stop_loss"].stop_price)) == expected.stop_price


def test_long_breakout_hits_take_profit(tmp_path) -> None:
    # box 09:30-09:39 = [99.5, 100.5], range 1.00: long stop 99.50, take-profit 101.50
    bars = {"10:00": (100.0, 100.7, 99.9, 100.6), "10:01": (100.6, 101.6, 100.5, 101.0)}
    with session(tmp_path, bars) as s:
        s.run()
        entries = s.entries()
        assert [e.client_order_id for e in entries] == [ENTRY_1]
        entry = entries[0]
        assert ny(entry.created_at).time() >= hm("10:01")
        legs = s.legs(entry)
        _assert_bracket(entry, legs, "buy", _box())
        assert entry.status == "filled"
        assert legs["take_profit"].status == "filled" and legs["stop_loss"].status == "canceled"
        assert legs["take_profit"].avg_price == pytest.approx(101.5)
        journal = s.journal()
        assert [r["leg"] for r in journal] == ["entry", "take_profit"]
        assert s.position() == 0
        s.check_invariants()


def test_short_breakout_hits_stop(tmp_path) -> None:
    # short below 99.5: stop 100.50, take-profit 98.50; the next bar rallies through the stop
    bars = {"10:00": (100.0, 100.1, 99.3, 99.4), "10:01": (99.4, 100.7, 99.3, 100.2)}
    with session(tmp_path, bars) as s:
        s.run()
        entries = s.entries()
        assert [e.client_order_id for e in entries] == [ENTRY_1]
        legs = s.legs(entries[0])
        _assert_bracket(entries[0], legs, "sell", _box())
        assert legs["stop_loss"].status == "filled" and legs["take_profit"].status == "canceled"
        assert legs["stop_loss"].avg_price == pytest.approx(100.5)
        assert [r["leg"] for r in s.journal()] == ["entry", "stop_loss"]
        s.check_invariants()


def test_narrow_box_is_widened_to_the_floor(tmp_path) -> None:
    base = (100.0, 100.05, 99.95, 100.0)  # range 0.10 < 0.3 % of 100 = 0.30
    bars = {"10:00": (100.0, 100.25, 99.98, 100.2), "10:01": (100.2, 100.4, 100.1, 100.3)}
    with session(tmp_path, bars, base=base) as s:
        s.run()
        entries = s.entries()
        assert [e.client_order_id for e in entries] == [ENTRY_1]
        box = _box(base)
        assert box.floored and box.range == pytest.approx(0.3)
        legs = s.legs(entries[0])
        _assert_bracket(entries[0], legs, "buy", box)
        assert legs["stop_loss"].stop_price == pytest.approx(99.75)
        assert legs["take_profit"].limit_price == pytest.approx(100.35)
        assert legs["take_profit"].status == "filled"
        s.check_invariants()


def test_no_entry_in_the_last_20_minutes(tmp_path) -> None:
    bars = {"15:45": (100.0, 100.7, 99.9, 100.6)}  # closes 15:46: 14 minutes left
    with session(tmp_path, bars) as s:
        s.run()
        assert s.orders == []
        assert s.journal() == []
        s.check_invariants()


# A long entered at 10:01 whose legs (stop 99.50, take-profit 101.50) nothing touches until `exit_bar`.
HOLD = (100.6, 100.9, 100.5, 100.6)
AFTER_TP = (101.0, 101.2, 100.8, 101.0)  # inside the next box: no second trade


def long_then(exit_at: str | None) -> tuple[dict[str, tuple[float, float, float, float]], dict]:
    bars = {"10:00": (100.0, 100.7, 99.9, 100.6)}
    after = {"10:01": HOLD}
    if exit_at is not None:
        bars[exit_at] = (100.6, 101.7, 100.5, 101.0)
        h, mnt = exit_at.split(":")
        after[f"{h}:{int(mnt) + 1:02d}"] = AFTER_TP
    return bars, after


def test_flatten_five_minutes_before_the_close(tmp_path) -> None:
    bars = {"15:30": (100.0, 100.7, 99.9, 100.6)}  # closes 15:31: 29 minutes left, entry allowed
    with session(tmp_path, bars, after={"15:31": HOLD}) as s:
        s.run()
        entries = s.entries()
        assert [e.client_order_id for e in entries] == [ENTRY_1]
        # The take-profit was replaced by a marketable limit (Alpaca support's way, forum t/11938): the
        # bracket stayed whole, its stop held until the exit filled, then canceled with it.
        flatten = [o for o in s.orders if "-flat-" in o.client_order_id]
        assert len(flatten) == 1 and flatten[0].type == "limit" and flatten[0].side == "sell"
        assert hm("15:55") <= ny(flatten[0].created_at).time() < hm("16:00")
        assert flatten[0].status == "filled" and flatten[0].parent_id == entries[0].id
        stop = next(o for o in s.orders if o.parent_id == entries[0].id and o.type == "stop")
        assert stop.status == "canceled" and stop.canceled_at == flatten[0].filled_at
        assert [r["leg"] for r in s.journal()] == ["entry", "flatten"]
        assert not [o for o in s.orders if o.type == "market" and o.side == "sell"]  # no DELETE close
        s.check_invariants()


def buy_before_start(s, stop: float | None) -> None:
    exchange, clock = s.server.exchange, s.server.clock
    clock.advance(10 * 60)  # 09:35
    exchange.submit(
        parse_order_request(
            {"symbol": SYMBOL, "qty": "100", "side": "buy", "type": "market", "time_in_force": "day"}
        )
    )
    clock.advance(30)  # filled: a sell stop next to a working buy would be a wash trade (refused)
    if stop is not None:
        exchange.submit(
            parse_order_request(
                {
                    "symbol": SYMBOL,
                    "qty": "100",
                    "side": "sell",
                    "type": "stop",
                    "stop_price": str(stop),
                    "time_in_force": "day",
                }
            )
        )
    clock.advance(60)
    assert s.position() == 100


def test_existing_unprotected_position_is_flattened(tmp_path) -> None:
    bars = {"10:00": (100.0, 100.7, 99.9, 100.6)}
    with session(tmp_path, bars) as s:
        buy_before_start(s, stop=None)
        start = s.server.exchange.now
        s.run()
        closes = [o for o in s.orders if o.side == "sell" and o.created_at >= start]
        assert closes and ny(closes[0].created_at) < ny(start) + __import__("datetime").timedelta(minutes=2)
        assert closes[0].status == "filled"
        # nothing of ours was sent while the position existed
        flat_at = closes[0].filled_at
        assert all(e.created_at > flat_at for e in s.entries())
        s.check_invariants()


def test_existing_protected_position_is_managed(tmp_path) -> None:
    bars = {"10:00": (100.0, 100.7, 99.9, 100.6)}  # a breakout while we hold: no entry
    with session(tmp_path, bars) as s:
        buy_before_start(s, stop=95.0)
        seen: list[str] = []

        def watch(r) -> bool:
            seen.append(r.states[SYMBOL].phase.value)
            return False

        s.run(stop_when=watch)
        assert "active_trade" in seen
        assert s.entries() == []
        s.check_invariants()


def test_restart_mid_trade_sends_no_second_entry(tmp_path) -> None:
    bars, after = long_then("10:20")
    with session(tmp_path, bars, after=after) as s:
        first = s.run(stop_when=lambda r: r.states[SYMBOL].position_qty != 0)  # "crash" in the trade
        assert s.position() == 100
        assert len(s.journal()) == 1
        del first
        s.run()  # a new Runner, a new Journal object on the same file
        entries = s.entries()
        assert [e.client_order_id for e in entries] == [ENTRY_1]
        assert s.legs(entries[0])["take_profit"].status == "filled"
        assert [r["leg"] for r in s.journal()] == ["entry", "take_profit"]
        s.check_invariants()


def test_fill_while_the_trade_stream_is_down(tmp_path) -> None:
    bars, after = long_then("10:03")
    with session(tmp_path, bars, after=after) as s:
        dropped: list[int] = []

        def drop_after_entry(r) -> bool:
            if not dropped and r.states[SYMBOL].position_qty != 0:
                dropped.append(s.server.control.drop_streams("trading"))
            return False

        s.run(stop_when=drop_after_entry)
        assert dropped and dropped[0] >= 1
        entries = s.entries()
        assert [e.client_order_id for e in entries] == [ENTRY_1]
        assert s.legs(entries[0])["take_profit"].status == "filled"
        journal = s.journal()
        assert [r["leg"] for r in journal] == ["entry", "take_profit"]
        s.check_invariants()


def test_429_storm(tmp_path) -> None:
    import datetime as dt

    bars = {"10:00": (100.0, 100.7, 99.9, 100.6), "10:01": (100.6, 101.6, 100.5, 101.0)}
    with session(tmp_path, bars) as s:
        # After the entry went out (a storm on the POST itself: tests/integration/bot/test_stalls.py).
        storm_at = dt.datetime(2024, 3, 4, 10, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
        injected: list[bool] = []

        def storm(r) -> bool:
            if not injected and s.clock.now() >= storm_at:
                s.server.control.inject_http_fault(429, count=20)
                injected.append(True)
            return False

        s.run(stop_when=storm)
        assert injected
        assert sum(1 for r in s.server.exchange.requests if r.status == 429) == 20
        entries = s.entries()
        assert [e.client_order_id for e in entries] == [ENTRY_1]
        assert s.max_requests_per_minute() <= 200
        s.check_invariants()


def test_partial_fills_of_the_entry(tmp_path) -> None:
    bars = {"10:00": (100.0, 100.7, 99.9, 100.6), "10:01": (100.6, 101.6, 100.5, 101.0)}
    with session(tmp_path, bars, partial_fills=True) as s:
        s.run()
        entries = s.entries()
        assert [e.client_order_id for e in entries] == [ENTRY_1]
        pieces = [e for e in s.server.exchange.executions if e.order_id == entries[0].id]
        assert len(pieces) >= 2
        journal = s.journal()
        entry_records = [r for r in journal if r["leg"] == "entry"]
        assert [int(r["qty"]) for r in entry_records] == [e.qty for e in pieces]
        assert sum(int(r["qty"]) for r in entry_records) == 100
        exits = [r for r in journal if r["leg"] != "entry"]
        assert sum(int(r["qty"]) for r in exits) == 100
        s.check_invariants()


def test_cli_end_to_end_simulated(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("APCA_")}
    console = Path(sys.executable).with_name("breakout-bot")
    started = time.monotonic()
    proc = subprocess.run(
        [str(console), "run", "--symbol", "AAPL", "--start", DAY.isoformat(), "--sim-report", "sim.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 60
    assert "SIMULATED" in proc.stdout + proc.stderr
    assert not (tmp_path / "past_trades.json").exists()  # simulated fills are kept apart
    journal = json.loads((tmp_path / "simulated" / "past_trades.json").read_text())
    sim_fills = json.loads((tmp_path / "sim.json").read_text())["fills"]
    assert sim_fills, "the seeded synthetic day trades"
    assert len(journal) == len(sim_fills)
    assert sorted(r["id"] for r in journal) == sorted(f["execution_id"] for f in sim_fills)
    net = sum(int(f["qty"]) * (1 if f["side"] == "buy" else -1) for f in sim_fills)
    assert net == 0
    assert f"{len(journal)} fills recorded in simulated/past_trades.json" in proc.stdout


def test_risk_gate_uses_the_account_read_at_the_previous_minute(tmp_path, monkeypatch) -> None:
    """The runner prefetches the account once a minute while searching; the gate must accept that read
    a minute and a bit later, or every entry decided on a streamed bar pays a GET /v2/account before
    its POST (~3.5 ms of the bar-to-order latency, benchmarks/latency.py). An entry sent reserves its
    buying power in the gate (no read per entry, issue 22); a fill still forces a fresh read."""
    import datetime as dt

    from breakout_bot.core.events import SubmitBracket

    with session(tmp_path) as s:
        runner = s.runner()
        reads = []
        real_get_account = s.broker.get_account
        monkeypatch.setattr(s.broker, "get_account", lambda: reads.append(1) or real_get_account())
        read_at = s.clock.now()
        runner.gate.account(max_age=dt.timedelta(0))
        assert len(reads) == 1
        monkeypatch.setattr(s.clock, "now", lambda: read_at + dt.timedelta(seconds=61))
        order = SubmitBracket(SYMBOL, "buy", 100, Decimal("99.5"), Decimal("101.5"), ENTRY_1, _box())
        assert runner.gate.refusal(order) is None
        assert len(reads) == 1  # the prefetched read served the gate
        runner.gate.reserve(order)  # the executor's, once the entry is sent
        assert runner.gate.refusal(order) is None
        assert len(reads) == 1  # the entry's buying power is counted in the gate: no read per entry
        runner.gate.invalidate()  # a fill
        assert runner.gate.refusal(order) is None
        assert len(reads) == 2  # read afresh


# A short from 10:01 (entry 99.40) stopped out at 100.50 by the 10:20 bar: -110. The box re-forms from
# the ten bars ending with the exit bar (99.20-100.70), and the 10:50 bar closes above it: a second
# breakout, which a daily loss limit of 100 must refuse.
_SHORT_HOLD = (99.4, 99.6, 99.2, 99.4)
_LOSS_THEN_BREAKOUT = {
    "10:00": (100.0, 100.1, 99.3, 99.4),
    "10:20": (99.4, 100.7, 99.3, 100.2),
    "10:50": (100.0, 101.0, 99.9, 100.9),
}


@pytest.mark.parametrize("crash", ["in_the_trade", "after_the_loss"])
def test_restart_keeps_the_daily_loss_limit(tmp_path, crash: str) -> None:
    def crashed(r) -> bool:
        if crash == "in_the_trade":
            return r.states[SYMBOL].position_qty != 0
        return len(s.journal()) == 2

    with session(
        tmp_path,
        _LOSS_THEN_BREAKOUT,
        after={"10:01": _SHORT_HOLD, "10:21": QUIET},
        params=Params(max_daily_loss=100.0),
    ) as s:
        s.run(stop_when=crashed)
        s.run()  # a new Runner: it learns today's realized P&L (and the open trade's entry) from the fills
        assert [e.client_order_id for e in s.entries()] == [ENTRY_1]
        assert [r["leg"] for r in s.journal()] == ["entry", "stop_loss"]
        s.check_invariants()


def test_a_restart_reports_the_days_realized_pnl_not_its_own_cash_flows(tmp_path) -> None:
    """Issue 17: Ctrl-C mid-trade, run again: the summary added only the second run's cash flows
    (+11131.00 where the panel said 322.00). The day's P&L comes from the machines, which learn it from
    the broker's fills of the day, as the panel and `trades` do."""
    from breakout_bot.live.status import DayResults

    with session(tmp_path, _LOSS_THEN_BREAKOUT, after={"10:01": _SHORT_HOLD, "10:21": QUIET}) as s:
        s.run(stop_when=lambda r: len(s.journal()) == 3)  # after the loss, inside the second trade
        results = DayResults()
        runner = s.runner()
        runner.observe(results)
        assert runner.run() == 0
        truth = s.server.exchange.account.realized_pl
        second_run = s.journal()[3:]
        cash = sum(
            float(r["qty"]) * float(r["price"]) * (1 if r["side"] == "sell" else -1) for r in second_run
        )
        assert cash != pytest.approx(truth)  # the old summary's figure is not the day's
        assert results.realized == {DAY: {SYMBOL: pytest.approx(truth)}}
        s.check_invariants()


@pytest.mark.parametrize("restart", [False, True])
def test_without_the_limit_the_second_breakout_trades(tmp_path, restart: bool) -> None:
    """The scenario above really has a second breakout, restart or not (so the limit is what stops it
    there). After the restart the 15-minute reconcile falls on the minute the 10:50 bar closes: the
    reconcile must not swallow that bar as history (it reaches the machine as a closed bar)."""
    with session(tmp_path, _LOSS_THEN_BREAKOUT, after={"10:01": _SHORT_HOLD, "10:21": QUIET}) as s:
        if restart:
            s.run(stop_when=lambda r: len(s.journal()) == 2)
        s.run()
        entries = s.entries()
        assert len(entries) == 2
        assert ny(entries[1].created_at).time() < hm("10:52")  # sent in the minute after the 10:50 bar
        s.check_invariants()


def test_restart_with_todays_fills_unreadable_still_manages_the_trade(tmp_path, caplog) -> None:
    """The fills endpoint fails for the rest of the day after a restart mid-trade: the reconcile goes on
    without today's P&L (a position must still be managed), the stream still journals every fill, and
    the bot trades the day out (the second breakout, the flatten)."""
    with session(tmp_path, _LOSS_THEN_BREAKOUT, after={"10:01": _SHORT_HOLD, "10:21": QUIET}) as s:
        s.run(stop_when=lambda r: r.states[SYMBOL].position_qty != 0)
        s.server.control.inject_http_fault(500, count=100_000, paths="/v2/account/activities")
        with caplog.at_level("WARNING", logger="breakout_bot.live"):
            s.run()
        assert "today's fills unreadable" in caplog.text
        assert len(s.entries()) == 2
        assert [r["leg"] for r in s.journal()] == ["entry", "stop_loss", "entry", "flatten"]
        s.check_invariants()
