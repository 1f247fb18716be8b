"""The websockets' and batch endpoints' JSON, as Alpaca shapes it (sim/wire.py holds all of it)."""

from __future__ import annotations

from breakout_bot.sim import wire
from breakout_bot.sim.errors import ApiError
from breakout_bot.sim.websockets import DATA_CHANNELS


def test_trading_stream_messages() -> None:
    assert wire.authorization_json(True, "authenticate") == {
        "stream": "authorization",
        "data": {"status": "authorized", "action": "authenticate"},
    }
    assert wire.authorization_json(False, "listen") == {
        "stream": "authorization",
        "data": {"status": "unauthorized", "action": "listen"},
    }
    assert wire.listening_json(True) == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
    assert wire.listening_json(False) == {"stream": "listening", "data": {"streams": []}}


def test_data_stream_messages() -> None:
    assert wire.data_success("connected") == [{"T": "success", "msg": "connected"}]
    assert wire.data_error(402, "auth failed") == [{"T": "error", "code": 402, "msg": "auth failed"}]
    subs: dict[str, set[str]] = {c: set() for c in DATA_CHANNELS}
    subs["bars"] = {"MSFT", "AAPL"}
    assert wire.subscription_json(subs, DATA_CHANNELS) == [
        {"T": "subscription", **{c: sorted(subs[c]) for c in DATA_CHANNELS}}
    ]


def test_errors_and_batch_rows() -> None:
    assert wire.error_json(ApiError(429, 42910000, "rate limit exceeded")) == {
        "code": 42910000,
        "message": "rate limit exceeded",
    }
    refused = ApiError(403, 40310000, "insufficient qty", available=0)
    assert wire.close_result_json("AAPL", refused) == {
        "symbol": "AAPL",
        "status": 403,
        "body": {"code": 40310000, "message": "insufficient qty", "available": "0"},
    }
    assert wire.latest_json("AAPL", "trade", {"p": 1.0}) == {"symbol": "AAPL", "trade": {"p": 1.0}}


def test_every_trade_update_carries_a_timestamp() -> None:
    """alpaca-py's TradeUpdate requires `timestamp` and drops an event without one (`new` included)."""
    order = {"id": "o-1", "status": "new"}
    for event in ("new", "pending_new", "accepted", "fill", "canceled", "rejected"):
        data = wire.trade_update(event, order, 1709562600.25)
        assert data["timestamp"] == "2024-03-04T14:30:00.250000Z", event
