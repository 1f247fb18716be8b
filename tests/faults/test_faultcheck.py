"""The invariant checker itself: each check fires on a hand-made violation and stays quiet otherwise."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from breakout_bot.testkit.faultcheck import check_day, check_protected_at, check_signal_age

CLOSE = datetime(2024, 3, 4, 21, 0, tzinfo=timezone.utc)  # 16:00 New York
END = CLOSE + timedelta(minutes=5)


def _ts(hh: int, mm: int, ss: int = 0) -> str:
    return f"2024-03-04T{hh:02d}:{mm:02d}:{ss:02d}.000000Z"


def _fill(eid: str, order: str, side: str, at: str) -> dict[str, str]:
    return {"id": f"x::{eid}", "execution_id": eid, "order_id": order, "symbol": "AAPL", "side": side,
            "qty": "100", "price": "100", "transaction_time": at}  # fmt: skip


def _bracket(n: int, sent: str, filled: str, stop_end: str, *, side: str = "buy") -> dict[str, object]:
    exit_side = "sell" if side == "buy" else "buy"
    return {
        "id": f"o{n}", "client_order_id": f"bb-AAPL-20240304-{n}", "symbol": "AAPL", "side": side,
        "status": "filled", "filled_qty": "100", "submitted_at": sent, "filled_at": filled,
        "legs": [
            {"id": f"o{n}tp", "type": "limit", "side": exit_side, "status": "canceled", "limit_price": str(101 + n),
             "canceled_at": stop_end},
            {"id": f"o{n}sl", "type": "stop", "side": exit_side, "status": "filled", "stop_price": str(99 - n),
             "filled_at": stop_end},
        ],
    }  # fmt: skip


def _day(**over: object) -> list[str]:
    fills = [_fill("e1", "o1", "buy", _ts(15, 0, 10)), _fill("e2", "o1sl", "sell", _ts(15, 30, 10))]
    kwargs: dict[str, object] = {
        "symbol": "AAPL",
        "close": CLOSE,
        "fills": fills,
        "orders": [_bracket(1, _ts(15, 0, 2), _ts(15, 0, 10), _ts(15, 30, 10))],
        "requests": [
            {"ts": CLOSE.timestamp() - 3600 + i, "path": "/v2/clock", "status": 200} for i in range(50)
        ],
        "positions": [],
        "journal_raw": json.dumps([{"id": "e1", "symbol": "AAPL"}, {"id": "e2", "symbol": "AAPL"}]),
        "end": END,
    }
    kwargs.update(over)
    return sorted(v.kind for v in check_day(**kwargs))  # type: ignore[arg-type]


def test_clean_day_has_no_violation() -> None:
    assert _day() == []


def test_journal_missing_duplicated_and_phantom_fills() -> None:
    raw = json.dumps(
        [{"id": "e1", "symbol": "AAPL"}, {"id": "e1", "symbol": "AAPL"}, {"id": "zz", "symbol": "AAPL"}]
    )
    assert _day(journal_raw=raw) == ["fill_duplicated", "fill_missing", "fill_phantom"]


def test_second_entry_while_the_first_works_is_a_duplicate() -> None:
    orders = [
        _bracket(1, _ts(15, 0, 2), _ts(15, 0, 10), _ts(15, 30, 10)),
        _bracket(2, _ts(15, 10, 2), "", ""),
    ]
    orders[1]["status"] = "canceled"
    orders[1]["filled_qty"] = "0"
    orders[1]["canceled_at"] = _ts(15, 11)
    assert "duplicate_entry" in _day(orders=orders)


def test_unprotected_position_and_not_flat_and_late_entry() -> None:
    fills = [_fill("e1", "o1", "buy", _ts(20, 45, 10))]
    order = _bracket(1, _ts(20, 45, 2), _ts(20, 45, 10), _ts(20, 46))
    order["legs"][1]["status"] = "canceled"  # type: ignore[index]
    order["legs"][1]["canceled_at"] = _ts(20, 46)  # type: ignore[index]
    kinds = _day(fills=fills, orders=[order], journal_raw=json.dumps([{"id": "e1", "symbol": "AAPL"}]))
    assert kinds == ["late_entry", "not_flat", "unprotected"]


def test_an_entry_whose_post_a_suspension_held_past_the_cutoff_is_not_the_bots_late_entry() -> None:
    # Cutoff 15:40 New York = 20:40Z. The POST was logged at 15:34:02, the bot was stopped then and
    # resumed at 15:45:33, the time the simulator's moved clock gave the order (seed 161100014).
    utc = timezone.utc
    sent = _ts(20, 45, 33)
    order = _bracket(1, sent, _ts(20, 45, 40), _ts(20, 50))
    fills = [_fill("e1", "o1", "buy", _ts(20, 45, 40)), _fill("e2", "o1sl", "sell", _ts(20, 50))]
    journal = json.dumps([{"id": "e1", "symbol": "AAPL"}, {"id": "e2", "symbol": "AAPL"}])
    post_at = datetime(2024, 3, 4, 20, 34, 2, tzinfo=utc)
    post = {"ts": post_at.timestamp(), "method": "POST", "path": "/v2/orders", "status": 200}
    pause = (post_at, datetime(2024, 3, 4, 20, 45, 33, tzinfo=utc))

    def kinds(requests: list[dict[str, object]], pauses: list[tuple[datetime, datetime]]) -> list[str]:
        return _day(orders=[order], fills=fills, journal_raw=journal, requests=requests, pauses=pauses)

    assert kinds([post], [pause]) == []
    assert kinds([post], []) == ["late_entry"]  # no suspension: late
    assert kinds([], [pause]) == ["late_entry"]  # no POST under way when it stopped: decided after it
    after_cutoff = (datetime(2024, 3, 4, 20, 40, 30, tzinfo=utc), pause[1])
    assert kinds([{**post, "ts": after_cutoff[0].timestamp()}], [after_cutoff]) == ["late_entry"]
    # Created long after the resume: a new decision, not the held-back POST.
    assert kinds([post], [(post_at, datetime(2024, 3, 4, 20, 44, tzinfo=utc))]) == ["late_entry"]


def test_rate_limit_window() -> None:
    burst = [{"ts": 1000.0 + i * 0.2, "path": "/v2/orders", "status": 200} for i in range(201)]
    assert _day(requests=burst) == ["rate_limit"]
    throttled = [*burst[:200], {"ts": 1010.0, "path": "/v2/orders", "status": 429}]
    assert _day(requests=throttled) == []


def _same_box_entry(n: int, sent: str) -> dict[str, object]:
    """Entry n, rejected (nothing filled), with entry 1's bracket prices."""
    order = _bracket(n, sent, "", "")
    order.update(status="rejected", filled_qty="0", failed_at=sent)
    for leg, price in zip(order["legs"], ("102", "98"), strict=True):  # type: ignore[call-overload]
        leg.update(status="rejected", limit_price=price, stop_price=price, filled_at=None, canceled_at=sent)
    return order


def test_same_box_resent_minutes_later_is_a_duplicate() -> None:
    orders = [_bracket(1, _ts(15, 0, 2), _ts(15, 0, 10), _ts(15, 30, 10)), _same_box_entry(2, _ts(15, 35, 2))]
    assert _day(orders=orders) == ["duplicate_entry"]  # 5 minutes after the first trade ended


def test_same_prices_hours_later_is_another_breakout() -> None:
    orders = [_bracket(1, _ts(15, 0, 2), _ts(15, 0, 10), _ts(15, 30, 10)), _same_box_entry(2, _ts(19, 0, 2))]
    assert _day(orders=orders) == []


# ---------------------------------------------------------------- issue 16's invariants


def _bar(hh: int, mm: int, close: float) -> dict[str, object]:
    return {"t": _ts(hh, mm), "o": 100, "h": max(close, 100), "l": min(close, 100), "c": close}


def test_an_entry_needs_a_fresh_bar_beyond_its_level() -> None:
    # Entry 1's bracket: stop 98 / take-profit 102 (n=1): level 100; sent 15:00:02 New York = 20:00:02Z.
    orders = [_bracket(1, _ts(20, 0, 2), _ts(20, 0, 10), _ts(20, 30, 10))]
    fresh = [_bar(19, 50, 100.2), _bar(19, 59, 100.6)]  # the 14:59 bar closed at 15:00, above 100
    assert _day(orders=orders, bars=fresh) == []
    stale = [_bar(19, 50, 100.6), _bar(19, 59, 99.9)]  # only the 14:50 bar broke out: 9 min old
    assert _day(orders=orders, bars=stale) == ["stale_entry"]
    utc = timezone.utc
    # Suspended from 14:51:05 on, between its decision on the 14:50 bar and the POST: not its doing ...
    caught = (datetime(2024, 3, 4, 19, 51, 5, tzinfo=utc), datetime(2024, 3, 4, 20, 0, 0, tzinfo=utc))
    assert _day(orders=orders, bars=stale, pauses=[caught]) == []
    # ... but a suspension that began before the bar closed only hid it: deciding on it later is stale.
    hid = (datetime(2024, 3, 4, 19, 50, 30, tzinfo=utc), datetime(2024, 3, 4, 20, 0, 0, tzinfo=utc))
    assert _day(orders=orders, bars=stale, pauses=[hid]) == ["stale_entry"]
    # A short needs a close below the level.
    short = [_bracket(1, _ts(20, 0, 2), _ts(20, 0, 10), _ts(20, 30, 10), side="sell")]
    for leg, price in zip(short[0]["legs"], ("98", "102"), strict=True):  # type: ignore[call-overload]
        leg.update(limit_price=price, stop_price=price)
    assert check_signal_age(short, [_bar(19, 59, 99.5)], "AAPL") == []
    assert [v.kind for v in check_signal_age(short, [_bar(19, 59, 100.5)], "AAPL")] == ["stale_entry"]


def _phase(symbol: str, before: str, after: str, when: str) -> str:
    return f"2026-12-01T09:00:00.000+00:00 INFO    breakout_bot.live.runner: {symbol}: {before} -> {after} at {when}"


START = "2026-12-01T09:00:00.000+00:00 INFO    breakout_bot.run: breakout-bot 0.1.0 starting: mode paper, ..."


def test_order_sent_for_minutes_is_a_hang_within_one_incarnation() -> None:
    ok = [START, _phase("AAPL", "searching", "order_sent", "2024-03-04T10:01:02-05:00"),
          _phase("AAPL", "order_sent", "searching", "2024-03-04T10:04:02-05:00")]  # fmt: skip
    assert _day(bot_log="\n".join(ok)) == []
    hung = [*ok[:2], _phase("MSFT", "searching", "order_sent", "2024-03-04T10:02:02-05:00"),
            _phase("AAPL", "order_sent", "done_for_the_day", "2024-03-04T12:55:02-05:00")]  # fmt: skip
    assert _day(bot_log="\n".join(hung)) == ["order_sent_hang"]
    killed = [*ok[:2], START, _phase("AAPL", "waiting_for_open", "searching", "2024-03-04T12:55:02-05:00")]
    assert _day(bot_log="\n".join(killed)) == []
    # Suspended for 9 of its 11 minutes in order_sent: it waited 2.
    stalled = [*ok[:2], _phase("AAPL", "order_sent", "searching", "2024-03-04T10:12:02-05:00")]
    pause = (
        datetime(2024, 3, 4, 15, 1, 30, tzinfo=timezone.utc),
        datetime(2024, 3, 4, 15, 10, 30, tzinfo=timezone.utc),
    )
    assert _day(bot_log="\n".join(stalled)) == ["order_sent_hang"]
    assert _day(bot_log="\n".join(stalled), pauses=[pause]) == []


def test_a_tests_own_load_is_not_the_bots_rate() -> None:
    burn = [{"ts": 1000.0 + i * 0.01, "path": "/v2/faultburn", "status": 404} for i in range(195)]
    bot = [{"ts": 1003.0 + i * 0.1, "path": "/v2/clock", "status": 200} for i in range(5)]
    assert _day(requests=[*burn, *bot, *bot]) == ["rate_limit"]
    assert _day(requests=[*burn, *bot, *bot], foreign_mark="faultburn") == []


def test_a_position_left_at_a_sigterm_needs_its_working_stop() -> None:
    fills = [_fill("e1", "o1", "buy", _ts(15, 0, 10)), _fill("e2", "o1sl", "sell", _ts(15, 30, 10))]
    order = _bracket(1, _ts(15, 0, 2), _ts(15, 0, 10), _ts(15, 30, 10))
    at = datetime(2024, 3, 4, 15, 10, tzinfo=timezone.utc)  # in the trade, the stop working
    assert check_protected_at([order], fills, "AAPL", [at]) == []
    assert check_protected_at([order], fills, "AAPL", [at + timedelta(hours=1)]) == []  # flat by then
    order["legs"][1].update(status="canceled", canceled_at=_ts(15, 5), filled_at=None)  # type: ignore[index]
    assert [v.kind for v in check_protected_at([order], fills[:1], "AAPL", [at])] == ["sigterm"]
