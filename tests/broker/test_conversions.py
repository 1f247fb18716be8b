"""Pure conversions of Alpaca's documented payloads (verbatim from /work/shared/alpaca/NOTES.md)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import msgpack
import pytest

from breakout_bot.broker.alpaca.convert import (
    account_from_dict,
    asset_from_dict,
    bar_from_dict,
    bracket_body,
    clock_from_dict,
    fill_from_dict,
    order_from_dict,
    rfc3339,
    session_from_dict,
    trade_update_from_dict,
)
from breakout_bot.broker.timestamps import parse_optional_time, parse_time
from breakout_bot.core.events import SubmitBracket
from breakout_bot.core.model import OPEN_STATUSES, OrderEvent, OrderStatus, OrderType

NY = ZoneInfo("America/New_York")
UTC = timezone.utc

ORDER = json.loads("""
{"id":"7b08df51-c1ac-453c-99f9-323a5f075f0d","client_order_id":"5680c4bc-9ac1-4a12-a44c-df427ba53032",
 "created_at":"2023-12-12T22:31:24.668464435Z","updated_at":"2023-12-12T22:31:24.668464435Z",
 "submitted_at":"2023-12-12T22:31:24.577215743Z","filled_at":null,"expired_at":null,"canceled_at":null,
 "failed_at":null,"replaced_at":null,"replaced_by":null,"replaces":null,
 "asset_id":"b0b6dd9d-8b9b-48a9-ba46-b9d54906e415","symbol":"AAPL","asset_class":"us_equity",
 "notional":null,"qty":"2","filled_qty":"0","filled_avg_price":null,"order_class":"","order_type":"limit",
 "type":"limit","side":"buy","time_in_force":"gtc","limit_price":"150","stop_price":null,"status":"accepted",
 "extended_hours":false,"legs":null,"trail_percent":null,"trail_price":null,"hwm":null,"subtag":null,"source":null}
""")

TRADE_UPDATE = json.loads("""
{"stream":"trade_updates","data":{"event":"fill","execution_id":"2f63ea93-423d-4169-b3f6-3fdafc10c418",
 "order":{"asset_class":"crypto","asset_id":"1cf35270-99ee-44e2-a77f-6fab902c7f80","cancel_requested_at":null,
  "canceled_at":null,"client_order_id":"4642fd68-d59a-47d7-a9ac-e22f536828d1","created_at":"2022-04-19T13:45:04.981350886-04:00",
  "expired_at":null,"extended_hours":false,"failed_at":null,"filled_at":"2022-04-19T17:45:05.024916716Z",
  "filled_avg_price":"105.8988475","filled_qty":"1790.86","hwm":null,"id":"a5be8f5e-fdfa-41f5-a644-7a74fe947a8f",
  "legs":null,"limit_price":null,"notional":null,"order_class":"","order_type":"market","qty":"1790.86",
  "replaced_at":null,"replaced_by":null,"replaces":null,"side":"sell","status":"filled","stop_price":null,
  "submitted_at":"2022-04-19T13:45:04.980944666-04:00","symbol":"SOLUSD","time_in_force":"gtc","trail_percent":null,
  "trail_price":null,"type":"market","updated_at":"2022-04-19T13:45:05.027690731-04:00"},
 "position_qty":"0","price":"105.8988475","qty":"1790.86","timestamp":"2022-04-19T17:45:05.024916716Z"}}
""")

BARS = json.loads("""
{"bars":[{"t":"2022-01-03T09:00:00Z","o":178.26,"h":178.26,"l":178.21,"c":178.21,"v":1118,"n":65,"vw":178.235733}],
 "symbol":"AAPL","next_page_token":"QUFQTHxNfDIwMjItMDEtMDNUMDk6MDA6MDAuMDAwMDAwMDAwWg=="}
""")

ACTIVITY = json.loads("""
{"id": "20220202135509981::2d7be4ff-d1f3-43e9-856a-0f5cf5c5088e", "activity_type": "FILL",
 "transaction_time": "2022-02-02T18:55:09.981482Z", "type": "fill", "price": "174.78", "qty": "2", "side": "buy",
 "symbol": "AAPL", "leaves_qty": "0", "order_id": "b5abe576-6a8a-49f3-a353-46b72c1ccae9", "cum_qty": "2",
 "order_status": "filled"}
""")


def test_order_example() -> None:
    o = order_from_dict(ORDER)
    assert o.id == "7b08df51-c1ac-453c-99f9-323a5f075f0d"
    assert o.client_order_id == "5680c4bc-9ac1-4a12-a44c-df427ba53032"
    assert (o.symbol, o.side, o.type, o.status) == ("AAPL", "buy", OrderType.LIMIT, OrderStatus.NEW)
    assert o.qty == Decimal("2") and o.filled_qty == Decimal("0")
    assert o.limit_price == Decimal("150") and o.stop_price is None and o.filled_avg_price is None
    assert o.legs == () and o.order_class == "" and o.is_open


def test_bracket_with_nested_legs() -> None:
    parent = dict(
        ORDER,
        order_class="bracket",
        type="market",
        order_type="market",
        limit_price=None,
        status="filled",
        filled_qty="2",
        filled_avg_price="149.995",
    )
    tp = dict(
        ORDER,
        id="leg-tp",
        side="sell",
        type="limit",
        limit_price="151.25",
        status="new",
        order_class="bracket",
    )
    sl = dict(
        ORDER,
        id="leg-sl",
        side="sell",
        type="stop",
        limit_price=None,
        stop_price="148.10",
        status="held",
        order_class="bracket",
    )
    parent["legs"] = [tp, sl]
    o = order_from_dict(parent)
    assert o.filled_avg_price == Decimal("149.995") and not o.is_open
    assert [leg.id for leg in o.legs] == ["leg-tp", "leg-sl"]
    assert o.legs[0].limit_price == Decimal("151.25") and o.legs[1].stop_price == Decimal("148.10")
    assert o.legs[1].is_open


def test_trade_update_example_uses_event_qty_and_price() -> None:
    u = trade_update_from_dict(TRADE_UPDATE["data"])
    assert u.event is OrderEvent.FILL
    assert u.execution_id == "2f63ea93-423d-4169-b3f6-3fdafc10c418"
    assert u.qty == Decimal("1790.86") and u.price == Decimal("105.8988475")
    assert u.timestamp == datetime(2022, 4, 19, 17, 45, 5, 24916, tzinfo=UTC)
    assert (
        u.order.status is OrderStatus.FILLED
        and u.order.side == "sell"
        and u.order.filled_qty == Decimal("1790.86")
    )


def test_trade_update_without_execution() -> None:
    data = {"event": "new", "order": ORDER}  # "new" carries no timestamp/qty/price
    u = trade_update_from_dict(data)
    assert u.execution_id is None and u.qty is None and u.price is None
    assert u.timestamp == parse_time(ORDER["updated_at"])


def test_partial_fill_qty_is_the_execution_not_the_cumulative() -> None:
    order = dict(ORDER, status="partially_filled", qty="100", filled_qty="70")
    u = trade_update_from_dict(
        {
            "event": "partial_fill",
            "execution_id": "e2",
            "order": order,
            "qty": "30",
            "price": "150.01",
            "timestamp": "2023-12-12T22:31:25Z",
            "position_qty": "70",
        }
    )
    assert u.qty == Decimal("30") and u.order.filled_qty == Decimal("70")


def test_bar_example() -> None:
    b = bar_from_dict(BARS["bars"][0])
    assert b.t == datetime(2022, 1, 3, 9, 0, tzinfo=UTC)
    assert (b.open, b.high, b.low, b.close, b.volume) == (178.26, 178.26, 178.21, 178.21, 1118.0)


def test_stream_bar_with_msgpack_timestamp() -> None:
    raw = msgpack.packb(
        [
            {
                "T": "b",
                "S": "SPY",
                "o": 388.985,
                "h": 389.13,
                "l": 388.975,
                "c": 389.12,
                "v": 49378,
                "t": msgpack.Timestamp.from_unix_nano(1614021300_000_000_000),
            }
        ]
    )
    msg = msgpack.unpackb(raw)[0]
    b = bar_from_dict(msg)
    assert b.t == datetime(2021, 2, 22, 19, 15, tzinfo=UTC) and b.close == 389.12


def test_clock_example() -> None:
    c = clock_from_dict(
        {
            "timestamp": "2022-04-28T14:07:04.451420928-04:00",
            "is_open": True,
            "next_open": "2022-04-29T09:30:00-04:00",
            "next_close": "2022-04-28T16:00:00-04:00",
        }
    )
    assert c.is_open
    assert c.timestamp == datetime(2022, 4, 28, 18, 7, 4, 451420, tzinfo=UTC)
    assert c.next_close == datetime(2022, 4, 28, 16, 0, tzinfo=NY)
    assert c.next_open.utcoffset() == timedelta(hours=-4)


def test_calendar_examples() -> None:
    s = session_from_dict({"date": "2018-01-03", "open": "09:30", "close": "16:00"})
    assert s.date == date(2018, 1, 3)
    assert s.open == datetime(2018, 1, 3, 9, 30, tzinfo=NY) and s.open.utcoffset() == timedelta(hours=-5)
    assert s.close == datetime(2018, 1, 3, 16, 0, tzinfo=NY)
    s = session_from_dict(
        {
            "date": "2022-05-17",
            "open": "09:30",
            "close": "16:00",
            "session_open": "0400",
            "session_close": "2000",
            "settlement_date": "2022-05-19",
        }
    )
    assert s.open.astimezone(UTC).hour == 13  # EDT
    half = session_from_dict({"date": "2026-11-27", "open": "0930", "close": "1300"})
    assert half.close == datetime(2026, 11, 27, 13, 0, tzinfo=NY)


def test_account_example() -> None:
    a = account_from_dict(
        json.loads("""
{"id":"1d9eed04-be39-4e01-9b84-a48ac5bbafcf","admin_configurations":{},"user_configurations":null,
 "account_number":"PALPACA_123","status":"ACTIVE","crypto_status":"ACTIVE","currency":"USD",
 "buying_power":"245432.61","regt_buying_power":"245432.61","daytrading_buying_power":"0",
 "options_buying_power":"122716.305","effective_buying_power":"245432.61","non_marginable_buying_power":"122086.5",
 "bod_dtbp":0,"cash":"122086.5","accrued_fees":"0","pending_transfer_in":"0","portfolio_value":"123346.11",
 "pattern_day_trader":true,"trading_blocked":false,"transfers_blocked":false,"account_blocked":false,
 "created_at":"2023-01-01T18:20:20.272275Z","trade_suspended_by_user":false,"multiplier":"2","shorting_enabled":true,
 "equity":"123346.11","last_equity":"122011.09751111286868","long_market_value":"1259.61","short_market_value":"0",
 "position_market_value":"1259.61","initial_margin":"629.8","maintenance_margin":"377.88",
 "last_maintenance_margin":"480.73","sma":"123369.74","daytrade_count":0,"balance_asof":"2023-09-27",
 "crypto_tier":1,"options_trading_level":2,"intraday_adjustments":"0","pending_reg_taf_fees":"0"}""")
    )
    assert a.status == "ACTIVE" and a.account_number == "PALPACA_123"
    assert (
        a.buying_power == Decimal("245432.61")
        and a.equity == Decimal("123346.11")
        and a.cash == Decimal("122086.5")
    )
    assert not a.trading_blocked and a.shorting_enabled


def test_asset_example() -> None:
    a = asset_from_dict(
        json.loads("""
{"id":"904837e3-3b76-47ec-b432-046db621571b","class":"us_equity","exchange":"NASDAQ","symbol":"AAPL",
 "name":"Apple Inc. Common Stock","status":"active","tradable":true,"marginable":true,"shortable":true,
 "easy_to_borrow":true,"fractionable":true,"maintenance_margin_requirement":30,"attributes":[]}""")
    )
    assert (a.symbol, a.status, a.tradable, a.shortable, a.easy_to_borrow, a.fractionable) == (
        "AAPL",
        "active",
        True,
        True,
        True,
        True,
    )


def test_fill_activity_example() -> None:
    f = fill_from_dict(ACTIVITY)
    assert f.execution_id == "2d7be4ff-d1f3-43e9-856a-0f5cf5c5088e"
    assert f.id == ACTIVITY["id"] and f.order_id == "b5abe576-6a8a-49f3-a353-46b72c1ccae9"
    assert (f.side, f.qty, f.price, f.cum_qty, f.leaves_qty, f.type) == (
        "buy",
        Decimal("2"),
        Decimal("174.78"),
        Decimal("2"),
        Decimal("0"),
        "fill",
    )
    assert f.transaction_time == datetime(2022, 2, 2, 18, 55, 9, 981482, tzinfo=UTC)
    short = fill_from_dict(dict(ACTIVITY, side="sell_short"))
    assert short.side == "sell"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-04-19T17:45:05.024916716Z", datetime(2022, 4, 19, 17, 45, 5, 24916, tzinfo=UTC)),
        ("2022-04-19T17:45:05Z", datetime(2022, 4, 19, 17, 45, 5, tzinfo=UTC)),
        ("2022-04-19T13:45:05.1-04:00", datetime(2022, 4, 19, 17, 45, 5, 100000, tzinfo=UTC)),
        # nanoseconds before an offset: the offset's digits are not fraction digits
        ("2022-04-19T13:45:05.024916716-04:00", datetime(2022, 4, 19, 17, 45, 5, 24916, tzinfo=UTC)),
        ("2022-04-19T17:45:05.000000Z", datetime(2022, 4, 19, 17, 45, 5, tzinfo=UTC)),
        ("2022-04-19T17:45:05.02+00:00", datetime(2022, 4, 19, 17, 45, 5, 20000, tzinfo=UTC)),
        ("2022-04-19T17:45:05", datetime(2022, 4, 19, 17, 45, 5, tzinfo=UTC)),
        (1650390305_024916716, datetime(2022, 4, 19, 17, 45, 5, 24916, tzinfo=UTC)),
    ],
)
def test_parse_time(text: object, expected: datetime) -> None:
    got = parse_time(text)
    assert got == expected and got.tzinfo is not None


def test_parse_optional_time() -> None:
    assert parse_optional_time(None) is None and parse_optional_time("") is None
    assert parse_optional_time("2022-04-19T17:45:05Z") == datetime(2022, 4, 19, 17, 45, 5, tzinfo=UTC)


def test_rfc3339_requires_tz() -> None:
    assert rfc3339(datetime(2024, 1, 2, 9, 30, tzinfo=NY)) == "2024-01-02T14:30:00Z"
    with pytest.raises(ValueError):
        rfc3339(datetime(2024, 1, 2, 9, 30))


def test_bracket_body_sends_strings() -> None:
    body = bracket_body(
        SubmitBracket("AAPL", "sell", 100, Decimal("151.26"), Decimal("148.10"), "bb-AAPL-20240102-1")
    )
    assert body == {
        "symbol": "AAPL",
        "qty": "100",
        "side": "sell",
        "type": "market",
        "time_in_force": "day",
        "order_class": "bracket",
        "take_profit": {"limit_price": "148.10"},
        "stop_loss": {"stop_price": "151.26"},
        "client_order_id": "bb-AAPL-20240102-1",
    }


# Alpaca's vocabulary, as the machine used to read it raw: the mapping keeps every distinction it made.
ALPACA_ACKS = ("new", "accepted", "pending_new", "held", "replaced")
ALPACA_ENDS = ("canceled", "expired", "rejected", "done_for_day", "stopped", "suspended")
ALPACA_OPEN = ("new", "accepted", "pending_new", "partially_filled", "held", "accepted_for_bidding",
               "pending_replace", "pending_cancel", "calculated")  # fmt: skip


def test_alpaca_events_statuses_and_types_map_to_the_cores_vocabulary() -> None:
    def event(raw: str) -> OrderEvent:
        return trade_update_from_dict({"event": raw, "order": ORDER}).event

    assert {event(e) for e in ALPACA_ACKS} == {OrderEvent.ACCEPTED}
    assert {event(e) for e in ALPACA_ENDS} <= {OrderEvent.CANCELED, OrderEvent.EXPIRED, OrderEvent.REJECTED}
    assert (event("fill"), event("partial_fill")) == (OrderEvent.FILL, OrderEvent.PARTIAL_FILL)
    assert event("pending_cancel") is event("order_replace_rejected") is OrderEvent.OTHER
    for raw in (*ALPACA_OPEN, "filled", "canceled", "expired", "rejected", "replaced", "stopped", "", "odd"):
        status = order_from_dict(dict(ORDER, status=raw)).status
        assert (status in OPEN_STATUSES) == (raw in ALPACA_OPEN), raw
    kinds = {raw: order_from_dict(dict(ORDER, type=raw, order_type=raw)).type for raw in
             ("market", "limit", "stop", "stop_limit", "trailing_stop", "odd")}  # fmt: skip
    assert kinds == {
        "market": OrderType.MARKET,
        "limit": OrderType.LIMIT,
        "stop": OrderType.STOP,
        "stop_limit": OrderType.STOP_LIMIT,
        "trailing_stop": OrderType.TRAILING_STOP,
        "odd": OrderType.OTHER,
    }
