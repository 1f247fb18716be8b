"""The simulator behaves as Alpaca does (issue 15; sources in docs/simulator.md, "How the simulator matches
Alpaca"): held stop legs, asynchronous cancels, held_for_orders, the buying-power collar, shorting rules,
the price at submission, the wire's statuses and fields, and the switchable refusals."""

from __future__ import annotations

import pytest

from breakout_bot.core.margin import MARKET_BUY_COLLAR, SHORT_ASK_MARGIN
from breakout_bot.sim import ApiError, wire
from breakout_bot.sim.acceptance import Rules
from breakout_bot.sim.feeds import iex_bars
from breakout_bot.sim.tape import TICK_OFFSETS

from .conftest import make_engine, ny
from .test_exchange import FLAT, bracket

MARKET_BUY = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day"}


def simple(side: str, kind: str, qty: int, **price: str) -> dict[str, object]:
    """A simple day order of AAPL (limit_price= or stop_price=)."""
    return {"symbol": "AAPL", "qty": qty, "side": side, "type": kind, "time_in_force": "day", **price}


def filled_bracket(**cfg: object):  # type: ignore[no-untyped-def]
    e = make_engine({"AAPL": [FLAT] * 5}, **cfg)
    parent = e.submit_order(bracket(qty=100, tp=105, sl=95))
    e.sync(ny(9, 30, 30))
    legs = {o.type: o for o in e.orders.values() if o.parent_id}
    return e, str(parent["id"]), legs["limit"], legs["stop"]


def listed(e, status: str, nested: bool) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    rows = e.list_orders(status=status, nested=nested)
    out = []
    for o in rows:
        out.append((o.type, o.status))
        if nested:
            out += [("  " + leg.type, leg.status) for leg in e.legs(o)]
    return out


# ---------------------------------------------------------------- held stop legs


def test_a_filled_brackets_stop_stays_held_and_is_listed_only_under_all_and_closed() -> None:
    e = make_engine({"AAPL": [FLAT] * 5})
    e.sync(ny(9, 30, 5))
    e.submit_order(bracket(qty=100, tp=105, sl=95))
    assert listed(e, "open", nested=False) == [("market", "new")]  # before the fill: the parent only
    e.sync(ny(9, 30, 30))
    assert listed(e, "open", nested=False) == [("limit", "new")]  # the take-profit only
    assert listed(e, "open", nested=True) == []  # the filled parent is gone, legs only under it
    assert listed(e, "all", nested=True) == [("market", "filled"), ("  limit", "new"), ("  stop", "held")]
    assert ("stop", "held") in listed(e, "closed", nested=False)


def test_the_held_stop_triggers_goes_new_then_fills_and_the_take_profit_ends() -> None:
    for how in ("canceled", "replaced"):
        e = make_engine({"AAPL": [FLAT, FLAT, (99.0, 99.0, 94.0, 94.5)]}, take_profit_on_stop=how)
        e.submit_order(bracket(qty=100, tp=105, sl=95))
        e.sync(ny(9, 33))
        tail = [(ev["event"], ev["order"]["type"]) for ev in e.trade_events][-3:]  # type: ignore[index]
        assert tail == [("new", "stop"), ("fill", "stop"), (how, "limit")]
        assert e.positions == {}


def test_held_for_orders_counts_the_group_once() -> None:
    e, _, tp, sl = filled_bracket()
    assert (tp.status, sl.status, sl.armed) == ("new", "held", True)
    with pytest.raises(ApiError) as err:
        e.close_position("AAPL")
    body = wire.error_json(err.value)
    assert (body["existing_qty"], body["held_for_orders"], body["available"]) == ("100", "100", "0")
    # An OCO exit order (its limit and its stop both working) holds its shares once too.
    e2 = make_engine({"AAPL": [FLAT] * 5})
    e2.submit_order({**MARKET_BUY, "qty": 10})
    e2.sync(ny(9, 30, 30))
    oco = {"symbol": "AAPL", "qty": 10, "side": "sell", "type": "limit", "time_in_force": "gtc"}
    e2.submit_order(
        {
            **oco,
            "order_class": "oco",
            "take_profit": {"limit_price": "105"},
            "stop_loss": {"stop_price": "95"},
        }
    )
    assert e2.exchange.book.held_qty("AAPL", "sell") == 10


# ---------------------------------------------------------------- cancels


def test_a_cancel_is_processed_later_and_the_shares_stay_held_meanwhile() -> None:
    e, _, tp, sl = filled_bracket()
    now = e.now
    e.cancel_order(tp.id)
    assert tp.status == "new" and sl.status == "held"  # 204, not processed yet: no pending_cancel
    with pytest.raises(ApiError) as err:
        e.close_position("AAPL")
    assert err.value.status == 403 and wire.error_json(err.value)["held_for_orders"] == "100"
    e.sync(now + 0.299)
    assert tp.status == "new"
    e.sync(now + 0.3)
    assert (tp.status, sl.status) == ("canceled", "canceled")  # one leg cancels the group
    assert "pending_cancel" not in [ev["event"] for ev in e.trade_events]
    e.close_position("AAPL")  # the shares are free now


def test_a_slow_cancel_shows_pending_cancel_and_may_still_fill() -> None:
    e = make_engine({"AAPL": [FLAT, FLAT, (99.0, 99.5, 98.8, 99.0)]}, cancel_latency_ms=5000)
    e.sync(ny(9, 30, 30))
    e.submit_order({**MARKET_BUY, "qty": 10})
    e.sync(ny(9, 31, 30))
    stop = e.submit_order(simple("sell", "stop", 10, stop_price="99.10"))
    e.sync(ny(9, 31, 58))
    e.cancel_order(str(stop["id"]))  # 09:31:58: the cancel is due at 09:32:03 ...
    order = e.orders[str(stop["id"])]
    assert order.status == "pending_cancel"
    e.sync(ny(9, 32, 5))
    assert order.status == "filled"  # ... but the 09:32:01 trade at 99.00 filled it first
    assert [ev["event"] for ev in e.trade_events][-2:] == ["pending_cancel", "fill"]


def test_canceling_an_entry_that_partly_filled_keeps_its_legs_for_the_filled_shares() -> None:
    e = make_engine({"AAPL": [FLAT] * 5}, partial_fills=True, cancel_latency_ms=0)
    e.sync(ny(9, 30, 5))
    parent = e.submit_order(bracket(qty=100, tp=105, sl=95))
    e.sync(ny(9, 30, 10))  # the first piece
    e.cancel_order(str(parent["id"]))
    legs = {o.type: o for o in e.orders.values() if o.parent_id}
    filled = e.orders[str(parent["id"])].filled_qty
    assert 0 < filled < 100
    assert (legs["limit"].status, legs["limit"].qty, legs["stop"].status, legs["stop"].armed) == (
        "new",
        filled,
        "held",
        True,
    )


# ---------------------------------------------------------------- the wire


def test_post_answers_pending_new_in_the_session_accepted_outside_and_every_event_has_a_timestamp() -> None:
    e = make_engine({"AAPL": [FLAT] * 5})
    assert e.submit_order({**MARKET_BUY, "qty": 1})["status"] == "accepted"  # 09:25
    e.sync(ny(9, 31))
    assert e.submit_order({**MARKET_BUY, "qty": 1})["status"] == "pending_new"
    e.sync(ny(9, 33))
    events = e.trade_events
    assert all(ev["timestamp"] for ev in events)
    for ev in events:
        has_id = "execution_id" in ev
        assert has_id == (ev["event"] not in ("accepted", "pending_new")), ev["event"]
    assert [ev["event"] for ev in events] == ["accepted", "new", "fill", "pending_new", "new", "fill"]


def test_account_has_no_pattern_day_trader_fields_unless_legacy() -> None:
    acct = make_engine({"AAPL": [FLAT]}).account_json()
    assert not {"pattern_day_trader", "daytrade_count", "daytrading_buying_power"} & set(acct)
    legacy = make_engine({"AAPL": [FLAT]}, legacy_pdt=frozenset({"entries"}))
    legacy.exchange.rules = Rules(403, frozenset({"entries"}))
    assert "pattern_day_trader" in wire.account_json(legacy.account_view(), legacy.now, True)


# ---------------------------------------------------------------- buying power


def test_buying_power_values_a_market_buy_with_the_collar_and_a_short_at_ask_plus_3pct() -> None:
    e = make_engine({"AAPL": [FLAT] * 5}, initial_cash=10_000.0, margin_multiplier=1.0)
    e.sync(ny(9, 30, 30))
    ask = e.ask("AAPL")  # 100.01
    fits = int(10_000 / (ask * (1 + MARKET_BUY_COLLAR)))  # 96 shares
    with pytest.raises(ApiError) as err:
        e.submit_order({**MARKET_BUY, "qty": fits + 1})
    assert err.value.message == "insufficient buying power"
    assert 100 * (fits + 1) <= 10_000  # at the last price alone it would have fit
    e.submit_order({**MARKET_BUY, "qty": fits})
    short_fits = int(10_000 / (ask * (1 + SHORT_ASK_MARGIN)))
    e2 = make_engine({"AAPL": [FLAT] * 5}, initial_cash=10_000.0, margin_multiplier=1.0)
    e2.sync(ny(9, 30, 30))
    with pytest.raises(ApiError):
        e2.submit_order({**MARKET_BUY, "side": "sell", "qty": short_fits + 1})
    e2.submit_order({**MARKET_BUY, "side": "sell", "qty": short_fits})


def test_open_orders_reserve_buying_power() -> None:
    e = make_engine({"AAPL": [FLAT] * 5}, initial_cash=10_000.0, margin_multiplier=1.0)
    e.sync(ny(9, 30, 30))
    before = float(str(e.account_json()["buying_power"]))
    e.submit_order(simple("buy", "limit", 30, limit_price="90"))
    assert float(str(e.account_json()["buying_power"])) == pytest.approx(before - 30 * 90)
    with pytest.raises(ApiError):  # the docs' example: $10,000, a $3,000 order open, $8,000 more refused
        e.submit_order(simple("buy", "limit", 80, limit_price="99"))


# ---------------------------------------------------------------- shorting


def test_a_hard_to_borrow_asset_refuses_opening_shorts_and_equity_under_2000_refuses_any() -> None:
    e = make_engine({"AAPL": [FLAT] * 3, "HTB": [FLAT] * 3})
    asset = wire.asset_json(e.assets["HTB"])
    assert (asset["shortable"], asset["easy_to_borrow"], asset["borrow_status"]) == (
        True,
        False,
        "hard_to_borrow",
    )
    e.sync(ny(9, 30, 30))
    with pytest.raises(ApiError) as err:
        e.submit_order({**MARKET_BUY, "symbol": "HTB", "side": "sell", "qty": 1})
    assert (err.value.status, err.value.code, err.value.message) == (
        403,
        40310000,
        "asset HTB cannot be sold short",
    )
    e.exchange.set_easy_to_borrow("AAPL", False)  # the flag changed overnight
    with pytest.raises(ApiError):
        e.submit_order({**MARKET_BUY, "side": "sell", "qty": 1})
    poor = make_engine({"AAPL": [FLAT] * 3}, initial_cash=1_500.0)
    poor.sync(ny(9, 30, 30))
    with pytest.raises(ApiError) as err:
        poor.submit_order({**MARKET_BUY, "side": "sell", "qty": 1})
    assert err.value.message == "account is not allowed to short"
    assert poor.account_json()["shorting_enabled"] is False


# ---------------------------------------------------------------- the price at submission


def test_the_price_moves_one_second_after_each_minute() -> None:
    """The bot decides a second or two after a bar closes: the price it meets is the next open (a trade at
    T+1 s), not the signal bar's close."""
    assert TICK_OFFSETS[0] == 1
    e = make_engine({"AAPL": [(100.0, 100.5, 99.9, 100.4), (100.9, 101.2, 100.8, 101.0)]})
    e.sync(ny(9, 31, 0.5))
    assert e.price("AAPL") == 100.4
    e.sync(ny(9, 31, 2))
    assert e.price("AAPL") == 100.9  # submit-time price differs from the signal close
    with pytest.raises(ApiError) as err:  # a take-profit the open gapped past: refused with base_price
        e.submit_order(bracket(qty=1, tp=100.9, sl=99.0))
    assert wire.error_json(err.value) == {
        "code": 42210000,
        "message": "take_profit.limit_price must be >= base_price + 0.01",
        "base_price": "100.9",
    }


def test_a_price_drift_fault_moves_the_price_before_the_next_order() -> None:
    e = make_engine({"AAPL": [FLAT] * 5})
    e.sync(ny(9, 30, 30))
    e.exchange.price_drift_pct = 1.0
    with pytest.raises(ApiError) as err:
        e.submit_order(bracket(qty=1, tp=100.5, sl=99.0))  # valid at 100, not at 101
    assert err.value.status == 422 and wire.error_json(err.value)["base_price"] == "101.0"
    assert e.price("AAPL") == 101.0 and e.exchange.price_drift_pct == 0  # one-shot
    e.submit_order(bracket(qty=1, tp=102, sl=99.0))


# ---------------------------------------------------------------- switchable refusals


def test_legacy_pattern_day_trader_refusals() -> None:
    e = make_engine({"AAPL": [FLAT] * 5})
    e.sync(ny(9, 30, 30))
    e.submit_order({**MARKET_BUY, "qty": 10})
    e.sync(ny(9, 31, 30))
    e.exchange.rules.legacy_pdt = frozenset({"exits"})
    with pytest.raises(ApiError) as err:
        e.close_position("AAPL")
    assert wire.error_json(err.value) == {
        "code": 40310100,
        "message": "trade denied due to pattern day trading protection",
    }
    e.submit_order({**MARKET_BUY, "qty": 1})  # entries still go
    e.exchange.rules.legacy_pdt = frozenset({"entries"})
    with pytest.raises(ApiError):
        e.submit_order({**MARKET_BUY, "qty": 1})
    e.sync(ny(9, 32, 30))
    e.close_position("AAPL")  # exits go


@pytest.mark.parametrize(("status", "code"), [(403, 40310000), (422, 42210000)])
def test_wash_trade_refuses_a_simple_order_opposite_a_working_one(status: int, code: int) -> None:
    e = make_engine({"AAPL": [FLAT] * 5}, wash_trade_status=status)
    e.sync(ny(9, 30, 30))
    buy = e.submit_order(simple("buy", "limit", 1, limit_price="90"))
    with pytest.raises(ApiError) as err:
        e.submit_order(simple("sell", "limit", 1, limit_price="110"))
    body = wire.error_json(err.value)
    assert (err.value.status, body["code"], body["message"]) == (
        status,
        code,
        "potential wash trade detected. use complex orders",
    )
    assert body["existing_order_id"] == buy["id"]
    e.submit_order(bracket(side="sell", qty=1, tp=95, sl=105))  # complex orders are exempt
    off = make_engine({"AAPL": [FLAT] * 5}, wash_trade_check=False)
    off.sync(ny(9, 30, 30))
    off.submit_order(simple("buy", "limit", 1, limit_price="90"))
    off.submit_order(simple("sell", "limit", 1, limit_price="110"))


# ---------------------------------------------------------------- the IEX feed


def test_the_iex_feed_is_thinner_seeded_and_consistent() -> None:
    e = make_engine(
        {"AAPL": [(100.0 + i / 100, 100.5 + i / 100, 99.5 + i / 100, 100.2 + i / 100) for i in range(390)]}
    )
    session = e.calendar.session_on_or_after(
        e.exchange.session.date if e.exchange.session else __import__("datetime").date(2024, 3, 4)
    )
    sip = e.source.day("AAPL", session)
    iex = iex_bars(sip, seed=7, missing_pct=5.0)
    assert iex is iex_bars(sip, seed=7, missing_pct=5.0)  # memoized
    assert 340 < len(iex) < 390 and set(iex.t.tolist()) < set(sip.t.tolist())
    other = iex_bars(sip, seed=8, missing_pct=5.0)
    assert other.t.tolist() != iex.t.tolist()  # seeded
    assert (
        (iex.low <= iex.o).all()
        and (iex.o <= iex.h).all()
        and (iex.low <= iex.c).all()
        and (iex.c <= iex.h).all()
    )
    assert int(iex.v.sum()) < int(sip.v.sum()) * 0.05
    assert abs(iex.c - sip.c[[list(sip.t).index(t) for t in iex.t]]).max() <= 0.0100001


# ---------------------------------------------------------------- switches: flags and /sim/faults


def test_the_rules_are_sim_flags() -> None:
    import argparse

    from breakout_bot.cli.commands import sim as sim_command

    parser = argparse.ArgumentParser()
    sim_command.configure(parser)
    flags = "--cancel-latency-ms 2500 --free-plan --legacy-pdt both --no-wash-trade-check"
    flags += " --stop-replaces-take-profit --iex-missing-pct 12 --start-time 10:00"
    cfg = sim_command.build_config(parser.parse_args(flags.split()))
    assert (cfg.cancel_latency_ms, cfg.free_plan, cfg.legacy_pdt) == (
        2500,
        True,
        frozenset({"entries", "exits"}),
    )
    assert (cfg.wash_trade_check, cfg.take_profit_on_stop, cfg.iex_missing_pct) == (False, "replaced", 12.0)
    assert cfg.start_time.isoformat() == "10:00:00"
    default = sim_command.build_config(parser.parse_args([]))
    assert (default.cancel_latency_ms, default.free_plan, default.legacy_pdt, default.wash_trade_check) == (
        300,
        False,
        frozenset(),
        True,
    )


def test_the_rules_are_sim_faults() -> None:
    import datetime as dt

    from breakout_bot.sim import SimConfig, SimServer

    server = SimServer(SimConfig(symbols=("AAPL",), start=dt.date(2024, 3, 4), speed=0))
    control, e = server.control, server.exchange
    control.apply_faults(
        {
            "cancel_latency_ms": 4000,
            "legacy_pdt": "exits",
            "wash_trade": 422,
            "free_plan": True,
            "easy_to_borrow": {"AAPL": False},
            "price_drift_pct": -0.5,
            "take_profit_on_stop": "replaced",
        }
    )
    state = control.state()
    assert (state["cancel_latency_ms"], state["legacy_pdt"], state["wash_trade"], state["free_plan"]) == (
        4000,
        ["exits"],
        422,
        True,
    )
    assert not e.assets["AAPL"].easy_to_borrow and e.price_drift_pct == -0.5
    assert e.matcher.take_profit_on_stop == "replaced"
    control.apply_faults({"clear": True})
    state = control.state()
    assert (state["cancel_latency_ms"], state["legacy_pdt"], state["wash_trade"], state["free_plan"]) == (
        300,
        [],
        403,
        False,
    )
    assert e.matcher.take_profit_on_stop == "canceled" and e.price_drift_pct == 0
