"""Matching engine and account: fills on the documented tick path, brackets, OCO, partials, expiry."""

from __future__ import annotations

import pytest

from breakout_bot.sim import ApiError, wire

from .conftest import make_engine, ny

FLAT = (100.0, 100.0, 100.0, 100.0)


def events(engine: object) -> list[tuple[str, str, str | None]]:
    return [
        (str(e["event"]), str(e["order"]["type"]), e.get("price"))  # type: ignore[index]
        for e in engine.trade_events
    ]  # type: ignore[attr-defined]


def bracket(
    side: str = "buy", qty: int = 100, tp: float = 101.0, sl: float = 99.0, **kw: object
) -> dict[str, object]:
    return {
        "symbol": "AAPL",
        "qty": str(qty),
        "side": side,
        "type": "market",
        "time_in_force": "day",
        "order_class": "bracket",
        "take_profit": {"limit_price": str(tp)},
        "stop_loss": {"stop_price": str(sl)},
        **kw,
    }


def test_bracket_take_profit_fills_and_stop_is_canceled() -> None:
    # 09:30 flat at 100; 09:31 rises through 101 inside the bar (low at :20, high at :40).
    e = make_engine({"AAPL": [FLAT, (100.3, 101.5, 100.2, 101.2)]})
    parent = e.submit_order(bracket())
    assert parent["status"] == "accepted"  # sent before the open
    assert [leg["status"] for leg in parent["legs"]] == ["held", "held"]  # type: ignore[index]
    e.sync(ny(9, 31))
    stop = next(o for o in e.orders.values() if o.type == "stop")
    assert stop.status == "held"  # the filled bracket's stop stays held until its price trades
    e.sync(ny(9, 33))
    assert events(e) == [
        ("accepted", "market", None),
        ("new", "market", None),  # it reached the exchange at the first trade of the session
        ("fill", "market", "100"),
        ("new", "limit", None),  # the take-profit rests at the exchange; the stop stays held
        ("fill", "limit", "101"),
        ("canceled", "stop", None),
    ]
    tp_fill = e.executions[-1]
    assert tp_fill.time == ny(9, 31, 40) and tp_fill.price == 101.0  # crossed inside the bar: the limit
    assert e.positions == {}
    assert e.cash == pytest.approx(100_000 + 100 * (101 - 100))


def test_stop_fills_at_the_gap_price() -> None:
    # 09:31 opens at 98.50, below the 99 stop: the stop fills at the worse tick price.
    e = make_engine({"AAPL": [FLAT, (98.5, 98.9, 98.2, 98.6)]})
    e.submit_order(bracket())
    e.sync(ny(9, 32))
    stop_fill = e.executions[-1]
    assert (stop_fill.side, stop_fill.price, stop_fill.time) == ("sell", 98.5, ny(9, 31, 1))
    assert events(e)[-3:] == [("new", "stop", None), ("fill", "stop", "98.5"), ("canceled", "limit", None)]
    assert e.cash == pytest.approx(100_000 - 150)


def test_stop_crossed_inside_a_bar_fills_at_the_stop() -> None:
    e = make_engine({"AAPL": [FLAT, (99.5, 99.6, 98.8, 99.0)]})
    e.submit_order(bracket())
    e.sync(ny(9, 32))
    assert (e.executions[-1].price, e.executions[-1].time) == (99.0, ny(9, 31, 40))


def test_market_order_after_a_bar_close_fills_at_next_open() -> None:
    e = make_engine({"AAPL": [(100, 100.4, 99.9, 100.2), (100.6, 100.8, 100.5, 100.7)]})
    e.sync(ny(9, 31, 3))  # the 09:30 bar closed 3 s ago
    e.submit_order({"symbol": "AAPL", "qty": 10, "side": "buy", "type": "market", "time_in_force": "day"})
    e.sync(ny(9, 32))
    assert (e.executions[0].price, e.executions[0].time) == (100.6, ny(9, 31, 10))


def test_latency_delays_arrival() -> None:
    e = make_engine({"AAPL": [(100, 100.4, 99.9, 100.2), (100.6, 100.8, 100.5, 100.7)]}, latency_ms=15_000)
    e.sync(ny(9, 30, 0.5))
    e.submit_order({"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"})
    e.sync(ny(9, 31))
    # arrives at 09:30:15.5: the 09:30:10 open is missed, the next tick (the low at :25) fills it
    assert (e.executions[0].price, e.executions[0].time) == (99.9, ny(9, 30, 25))


def test_partial_fills_in_pieces_and_legs_follow() -> None:
    e = make_engine({"AAPL": [FLAT, FLAT]}, partial_fills=True)
    e.submit_order(bracket(qty=100, tp=105, sl=95))
    e.sync(ny(9, 31))
    kinds = [x.kind for x in e.executions]
    assert kinds[-1] == "fill" and set(kinds[:-1]) == {"partial_fill"} and 2 <= len(kinds) <= 3
    assert sum(x.qty for x in e.executions) == 100
    assert [x.cum_qty for x in e.executions][-1] == 100
    times = [x.time for x in e.executions]
    assert times == sorted(times) and len(set(times)) == len(times)  # consecutive ticks
    fills = [ev for ev in e.trade_events if ev["event"] in ("partial_fill", "fill")]
    assert [int(str(ev["qty"])) for ev in fills] == [x.qty for x in e.executions]
    assert [ev["order"]["filled_qty"] for ev in fills][-1] == "100"  # type: ignore[index]
    legs = {o.type: o for o in e.orders.values() if o.parent_id}
    assert all(leg.qty == 100 for leg in legs.values())
    assert (legs["limit"].status, legs["stop"].status, legs["stop"].armed) == ("new", "held", True)


def test_day_orders_expire_at_close_gtc_survives() -> None:
    e = make_engine({"AAPL": [FLAT]})
    day = e.submit_order(
        {
            "symbol": "AAPL",
            "qty": 1,
            "side": "buy",
            "type": "limit",
            "limit_price": "90",
            "time_in_force": "day",
        }
    )
    gtc = e.submit_order(
        {
            "symbol": "AAPL",
            "qty": 1,
            "side": "buy",
            "type": "limit",
            "limit_price": "90",
            "time_in_force": "gtc",
        }
    )
    e.sync(ny(16, 0, 1))
    assert e.orders[str(day["id"])].status == "expired"
    assert e.orders[str(day["id"])].expired_at == ny(16, 0)
    assert e.orders[str(gtc["id"])].status == "new"
    assert ("expired", "limit", None) in events(e)


def test_short_then_cover_books_pnl_and_cash() -> None:
    e = make_engine({"AAPL": [FLAT, (99.0, 99.0, 99.0, 99.0)]})
    e.submit_order({"symbol": "AAPL", "qty": 50, "side": "sell", "type": "market", "time_in_force": "day"})
    e.sync(ny(9, 30, 30))
    assert e.positions["AAPL"].qty == -50
    assert e.cash == pytest.approx(105_000)
    pos = e.position_json("AAPL")
    assert pos["side"] == "short" and pos["qty"] == "-50"
    e.sync(ny(9, 31, 30))
    assert e.equity() == pytest.approx(100_050)  # short 50 from 100 marked at 99
    e.close_position("AAPL")
    e.sync(ny(9, 32, 30))
    assert e.positions == {} and e.realized_pl == pytest.approx(50)
    assert e.cash == pytest.approx(100_050) and e.equity() == pytest.approx(100_050)


def test_not_shortable_and_not_tradable() -> None:
    e = make_engine({"AAPL": [FLAT], "NOSHORT": [FLAT]})
    with pytest.raises(ApiError) as err:
        e.submit_order(
            {"symbol": "NOSHORT", "qty": 1, "side": "sell", "type": "market", "time_in_force": "day"}
        )
    assert (err.value.status, err.value.code) == (403, 40310000)
    with pytest.raises(ApiError) as err:
        e.submit_order({"symbol": "HALTD", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"})
    assert err.value.status == 422
    with pytest.raises(ApiError) as err:
        e.submit_order({"symbol": "ZZZZ", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"})
    assert err.value.status == 422 and "not found" in err.value.message


def test_oco_exit_one_cancels_other() -> None:
    e = make_engine({"AAPL": [FLAT, FLAT, (100.5, 101.2, 100.4, 101.1)]})
    e.submit_order({"symbol": "AAPL", "qty": 10, "side": "buy", "type": "market", "time_in_force": "day"})
    e.sync(ny(9, 30, 30))
    oco = e.submit_order(
        {
            "symbol": "AAPL",
            "qty": 10,
            "side": "sell",
            "type": "limit",
            "time_in_force": "gtc",
            "order_class": "oco",
            "take_profit": {"limit_price": "101"},
            "stop_loss": {"stop_price": "99"},
        }
    )
    assert oco["status"] == "pending_new" and oco["legs"][0]["status"] == "pending_new"  # type: ignore[index]
    assert e.orders[str(oco["legs"][0]["id"])].status == "new"  # type: ignore[index]
    e.sync(ny(9, 33))
    assert e.orders[str(oco["id"])].status == "filled"
    assert e.orders[str(oco["legs"][0]["id"])].status == "canceled"  # type: ignore[index]
    assert e.positions == {}


def test_validation_errors_use_alpaca_shapes() -> None:
    e = make_engine({"AAPL": [FLAT]})
    with pytest.raises(ApiError) as err:
        e.submit_order(
            {
                "symbol": "AAPL",
                "qty": 1,
                "side": "buy",
                "type": "limit",
                "limit_price": 41.085,
                "time_in_force": "day",
            }
        )
    assert (err.value.status, err.value.code) == (422, 42210000)
    assert err.value.message == (
        "invalid limit_price 41.085. sub-penny increment does not fulfill minimum pricing criteria"
    )
    # below $1 four decimals are fine, five are not
    e.submit_order(
        {
            "symbol": "AAPL",
            "qty": 1,
            "side": "buy",
            "type": "limit",
            "limit_price": "0.5123",
            "time_in_force": "day",
        }
    )
    with pytest.raises(ApiError):
        e.submit_order(
            {
                "symbol": "AAPL",
                "qty": 1,
                "side": "buy",
                "type": "limit",
                "limit_price": "0.51234",
                "time_in_force": "day",
            }
        )
    with pytest.raises(ApiError) as err:
        e.submit_order(bracket(tp=100.0))
    assert err.value.message == "take_profit.limit_price must be >= base_price + 0.01"
    assert wire.error_json(err.value)["base_price"] == "100.0"
    with pytest.raises(ApiError) as err:
        e.submit_order(bracket(side="sell", tp=99.0, sl=100.0))
    assert err.value.message == "stop_loss.stop_price must be >= base_price + 0.01"
    e.submit_order(bracket(client_order_id="abc"))
    with pytest.raises(ApiError) as err:
        e.submit_order(bracket(client_order_id="abc"))
    assert wire.error_json(err.value) == {"code": 40010001, "message": "client_order_id must be unique"}
    with pytest.raises(ApiError) as err:
        e.submit_order(
            {"symbol": "AAPL", "qty": 100_000, "side": "buy", "type": "market", "time_in_force": "day"}
        )
    assert (err.value.status, err.value.code, err.value.message) == (
        403,
        40310000,
        "insufficient buying power",
    )
    for bad in (
        {"qty": "1.5"},
        {"qty": "0"},
        {"side": "long"},
        {"type": "trailing_stop"},
        {"time_in_force": "x"},
    ):
        body = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day", **bad}
        with pytest.raises(ApiError) as err:
            e.submit_order(body)
        assert err.value.status == 422


def test_qty_held_by_legs_is_not_available() -> None:
    e = make_engine({"AAPL": [FLAT, FLAT]})
    e.submit_order(bracket(qty=10))
    e.sync(ny(9, 30, 30))
    with pytest.raises(ApiError) as err:
        e.close_position("AAPL")
    assert err.value.status == 403 and "insufficient qty available" in err.value.message
    out = e.close_all()
    assert out[0]["status"] == 200
    e.sync(ny(9, 31, 30))
    assert e.positions == {}


def test_cancel_and_replace() -> None:
    e = make_engine({"AAPL": [FLAT, FLAT]})
    o = e.submit_order(
        {
            "symbol": "AAPL",
            "qty": 1,
            "side": "buy",
            "type": "limit",
            "limit_price": "95",
            "time_in_force": "day",
        }
    )
    new = e.replace_order(str(o["id"]), {"limit_price": "96"})
    assert new["replaces"] == o["id"] and new["limit_price"] == "96"
    assert e.orders[str(o["id"])].status == "replaced"
    e.cancel_order(str(new["id"]))
    assert e.orders[str(new["id"])].status == "accepted"  # a cancel is a request: not processed yet
    e.sync(e.now + 0.3)
    with pytest.raises(ApiError) as err:
        e.cancel_order(str(new["id"]))
    assert err.value.message == 'order is already in "canceled" state'
    assert [x[0] for x in events(e)] == ["accepted", "replaced", "accepted", "canceled"]


def test_equity_is_cash_plus_positions_after_many_trades() -> None:
    bars = [(100 + i * 0.1, 100.5 + i * 0.1, 99.5 + i * 0.1, 100.2 + i * 0.1) for i in range(30)]
    e = make_engine({"AAPL": bars})
    for i, (side, qty) in enumerate(
        [("buy", 10), ("sell", 5), ("buy", 30), ("sell", 20), ("buy", 10), ("sell", 15)]
    ):
        e.submit_order({"symbol": "AAPL", "qty": qty, "side": side, "type": "market", "time_in_force": "day"})
        e.sync(ny(9, 30 + 2 * i, 30))
    pos_value = sum(p.qty * e.last["AAPL"] for p in e.positions.values())
    assert e.equity() == pytest.approx(e.cash + pos_value)
    unrealized = sum(p.qty * (e.last["AAPL"] - p.avg_entry_price) for p in e.positions.values())
    assert e.equity() == pytest.approx(100_000 + e.realized_pl + unrealized)
    acct = e.account_json()
    assert float(str(acct["equity"])) == pytest.approx(e.equity(), abs=0.01)


def test_same_seed_same_requests_same_fills_with_fresh_ids() -> None:
    """Prices and trades are reproducible; ids are not (issue 17: a journal keyed by execution id lost
    a second run's fills when every simulator issued the same ids), unless id_seed fixes them."""

    def run(**cfg: object) -> tuple[list[tuple[str, float, float, int]], list[str], str]:
        bars = [(100 + i * 0.1, 100.5 + i * 0.1, 99.5 + i * 0.1, 100.2 + i * 0.1) for i in range(10)]
        e = make_engine({"AAPL": bars}, partial_fills=True, **cfg)
        e.submit_order(bracket(qty=30, tp=100.9, sl=98))
        e.sync(ny(9, 40))
        fills = [(x.side, x.price, x.time, x.qty) for x in e.executions]
        ids = [x.execution_id for x in e.executions] + [x.order_id for x in e.executions]
        return fills, ids, str(e.account_json()["account_number"])

    first, second = run(), run()
    assert first[0] == second[0] and len(first[0]) >= 2
    assert not set(first[1]) & set(second[1])
    assert first[2] != second[2] and first[2].startswith("PSIM")
    assert run(id_seed=5) == run(id_seed=5)
