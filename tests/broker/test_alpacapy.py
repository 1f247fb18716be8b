"""alpaca-py under the adapter, without a server: the internals broker/alpacapy/sdk.py relies on still
exist, its knobs are turned off, and our retry policy reads its errors. Skipped where alpaca-py is not
installed."""

from __future__ import annotations

import inspect
import io
import json

import pytest
import requests

pytest.importorskip("alpaca")

from alpaca.common.exceptions import APIError
from alpaca.common.rest import RESTClient

from breakout_bot.broker.alpacapy import sdk
from breakout_bot.broker.retry import classify, to_broker_error
from breakout_bot.errors import BrokerAuthError, BrokerRejected, InsufficientBuyingPower, TransientBrokerError


def instance(cls: type) -> object:
    if cls is sdk.StockDataStream:
        return cls("k", "s", url_override="ws://127.0.0.1:9/v2/iex")
    if cls is sdk.TradingStream:
        return cls("k", "s", url_override="ws://127.0.0.1:9/stream")
    return cls("k", "s", url_override="http://127.0.0.1:9")


@pytest.mark.parametrize("cls", list(sdk.PRIVATE_ATTRIBUTES), ids=lambda c: c.__name__)
def test_the_internals_we_use_exist(cls: type) -> None:
    """An alpaca-py upgrade that renames one fails here, not at the next market open (alpaca-py #743
    plans to move its streams off websockets.legacy, which will change them)."""
    obj = instance(cls)
    for name in sdk.PRIVATE_ATTRIBUTES[cls]:
        assert hasattr(obj, name), f"{cls.__name__}.{name}"
    for name in sdk.PRIVATE_COROUTINES.get(cls, ()):
        method = getattr(cls, name)
        assert inspect.iscoroutinefunction(method), f"{cls.__name__}.{name}"
        assert list(inspect.signature(method).parameters) == ["self"], f"{cls.__name__}.{name}"


def test_zero_retries_cannot_be_asked_of_the_constructor() -> None:
    """Why sdk.py sets the private: alpaca-py reads retry_attempts=0 as 'the default' (3), which retries
    POSTs on 429/504; TradingClient does not even take the argument."""
    assert RESTClient("http://127.0.0.1:9", "k", "s", retry_attempts=0)._retry == 3
    with pytest.raises(TypeError):
        sdk.TradingClient("k", "s", retry_attempts=0)  # type: ignore[call-arg]


def test_rest_clients_have_no_retries_and_use_our_session() -> None:
    session = requests.Session()
    rest = sdk.PyRest("k", "s", "http://127.0.0.1:9/", "http://127.0.0.1:8", session)
    assert rest.retries == 0 and rest.retry_codes == []
    assert rest.sessions == (session, session)
    assert rest.data_url == "http://127.0.0.1:8"
    assert "s" not in repr(rest).replace("<PyRest http://127.0.0.1:9>", "")


def test_stream_urls() -> None:
    assert (
        sdk.websocket_url("https://paper-api.alpaca.markets", "/stream")
        == "wss://paper-api.alpaca.markets/stream"
    )
    assert sdk.websocket_url("http://127.0.0.1:5/", "/v2/iex") == "ws://127.0.0.1:5/v2/iex"
    assert (
        sdk.websocket_url("wss://stream.data.alpaca.markets", "/v2/sip")
        == "wss://stream.data.alpaca.markets/v2/sip"
    )


def api_error(status: int, text: str) -> APIError:
    """What alpaca-py raises: the body's text and the requests HTTPError."""
    resp = requests.Response()
    resp.status_code = status
    resp.raw = io.BytesIO(text.encode())
    return APIError(text, requests.HTTPError(f"{status} Error", response=resp))


def test_classify_reads_alpacapy_errors() -> None:
    """APIError.code parses the body on every read: KeyError without a "code" (market data's bodies),
    JSONDecodeError for a proxy's HTML page. classify must not crash on either."""
    sip = api_error(403, json.dumps({"message": "subscription does not permit querying recent SIP data"}))
    with pytest.raises(KeyError):
        _ = sip.code
    f = classify(sip)
    assert (f.kind, f.status, f.code) == ("http", 403, None) and "SIP" in f.message
    assert isinstance(to_broker_error(f), BrokerAuthError | BrokerRejected)
    html = api_error(502, "<html><body>Bad Gateway</body></html>")
    with pytest.raises(json.JSONDecodeError):
        _ = html.code
    f = classify(html)
    assert (f.status, f.code) == (502, None) and isinstance(to_broker_error(f), TransientBrokerError)
    coded = classify(api_error(403, json.dumps({"code": 40310000, "message": "insufficient buying power"})))
    # A 403 is told apart by its message (issue 15): a refusal, never bad keys.
    assert (coded.code, type(to_broker_error(coded))) == (40310000, InsufficientBuyingPower)
