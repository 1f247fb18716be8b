"""call_with_retries: which failures are retried, how long we wait, and what is raised."""

from __future__ import annotations

import io
import json
import socket
import ssl
from collections.abc import Callable
from typing import Any

import pytest
import requests

from breakout_bot.broker.retry import backoff_delay, call_with_retries, classify, to_broker_error
from breakout_bot.broker.sdks import installed
from breakout_bot.errors import (
    AccountRestricted,
    BrokerAuthError,
    BrokerError,
    BrokerNotFound,
    BrokerRejected,
    BrokerUnavailable,
    DataForbidden,
    DayTradeRefused,
    FeedNotPermitted,
    InsufficientBuyingPower,
    InsufficientQty,
    OrderOutcomeUnknown,
    PriceMoved,
    ShortRefused,
    TransientBrokerError,
    WashTradeRefused,
)


def http_error(status: int, body: object = None, headers: dict[str, str] | None = None) -> requests.HTTPError:
    resp = requests.Response()
    resp.status_code = status
    if isinstance(body, (dict, list)):
        resp.raw = io.BytesIO(json.dumps(body).encode())
        resp.headers["Content-Type"] = "application/json"
    else:
        resp.raw = io.BytesIO((body or "").encode() if isinstance(body, str) else b"")
    resp.headers.update(headers or {})
    return requests.HTTPError(f"{status} Error", response=resp)


def api_error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Exception:
    """What alpaca_trade_api raises for a JSON error body with a "message" (alpaca-py's APIError where it
    is the only SDK installed; tests/broker/test_alpacapy.py has alpaca-py's own cases)."""
    http = http_error(status, body, headers)
    if installed("alpaca-trade-api"):
        from alpaca_trade_api.rest import APIError

        return APIError(body, http)
    from alpaca.common.exceptions import APIError as PyAPIError

    return PyAPIError(json.dumps(body), http)


class Script:
    """fn() that raises the given exceptions in turn, then returns "ok"."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def run(fn: Callable[[], Any], *, idempotent: bool = True, **kw: Any) -> tuple[Any, list[float]]:
    sleeps: list[float] = []
    kw.setdefault("rng", lambda: 0.5)
    result = call_with_retries(fn, idempotent=idempotent, sleep=sleeps.append, **kw)
    return result, sleeps


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    fn = Script(
        api_error(status, {"code": status * 100000, "message": "x"}), http_error(status, "plain text")
    )
    result, sleeps = run(fn)
    assert result == "ok" and fn.calls == 3 and len(sleeps) == 2


def test_timeouts_and_connection_errors_are_retried() -> None:
    fn = Script(requests.ReadTimeout("slow"), requests.ConnectionError("refused"), requests.ConnectTimeout())
    result, _ = run(fn)
    assert result == "ok" and fn.calls == 4


def test_backoff_grows_and_is_capped() -> None:
    fn = Script(*[requests.ReadTimeout() for _ in range(4)])
    _, sleeps = run(fn, base_delay=1.0, max_delay=3.0, rng=lambda: 1.0)
    assert sleeps == [1.0, 2.0, 3.0, 3.0]
    _, sleeps = run(
        Script(*[requests.ReadTimeout() for _ in range(4)]), base_delay=1.0, max_delay=30, rng=lambda: 0.0
    )
    assert sleeps == [0.5, 1.0, 2.0, 4.0]  # equal jitter: at least half the exponential delay


def test_gives_up_after_max_attempts() -> None:
    fn = Script(*[http_error(503) for _ in range(10)])
    with pytest.raises(BrokerUnavailable, match="gave up after 3 attempts"):
        run(fn, max_attempts=3)
    assert fn.calls == 3


def test_retry_after_header_is_respected_and_capped() -> None:
    fn = Script(api_error(429, {"code": 42910000, "message": "too many"}, {"Retry-After": "3"}))
    _, sleeps = run(fn, base_delay=0.5, rng=lambda: 0.0)
    assert sleeps == [3.0]
    fn = Script(api_error(429, {"message": "too many"}, {"Retry-After": "120"}))
    _, sleeps = run(fn, max_delay=8.0)
    assert sleeps == [8.0]


def test_ratelimit_reset_header() -> None:
    fn = Script(http_error(429, "Too Many Requests", {"X-Ratelimit-Reset": "1005"}))
    _, sleeps = run(fn, epoch_now=lambda: 1000.0, rng=lambda: 0.0)
    assert sleeps == [5.0]
    # a reset time far from our clock (e.g. the simulator's virtual clock) is ignored: plain backoff
    fn = Script(http_error(429, "Too Many Requests", {"X-Ratelimit-Reset": "99999999"}))
    _, sleeps = run(fn, epoch_now=lambda: 1000.0, rng=lambda: 0.0, base_delay=0.5)
    assert sleeps == [0.25]


def test_401_is_auth_error_at_once() -> None:
    fn = Script(api_error(401, {"code": 40110000, "message": "request is not authorized"}))
    with pytest.raises(BrokerAuthError, match="not authorized"):
        run(fn)
    assert fn.calls == 1


def test_401_without_a_code_and_as_html_is_auth_error() -> None:
    """Alpaca's 401 carries no code, and /v2/clock answers with nginx's HTML (research §2.2)."""
    for exc in (api_error(401, {"message": "unauthorized."}), http_error(401, "<html>401</html>")):
        with pytest.raises(BrokerAuthError):
            run(Script(exc))


# Every body of issue 15 and of the research notes (/work/research/alpaca-rules.md §2.2), with what it
# is: none of them says the keys are wrong.
REFUSALS = [
    (403, "trading", {"buying_power": "176531.28", "code": 40310000, "cost_basis": "48640000",
                      "message": "insufficient buying power"}, InsufficientBuyingPower),
    (403, "trading", {"available": "0", "code": 40310000, "existing_qty": "44", "held_for_orders": "44",
                      "message": "insufficient qty available for order (requested: 44, available: 0)",
                      "symbol": "AEIS"}, InsufficientQty),
    (403, "trading", {"code": 40310000, "message": "account is not allowed to short"}, ShortRefused),
    (403, "trading", {"code": 40310000, "message": "asset HTB cannot be sold short"}, ShortRefused),
    (403, "trading", {"code": 40310000, "message": "potential wash trade detected. use complex orders"},
     WashTradeRefused),
    (403, "trading", {"code": 40310000, "message": "potential wash trade detected. opposite side limit "
                      "order exists. use complex orders"}, WashTradeRefused),
    (422, "trading", {"code": 42210000, "message": "potential wash trade detected. use complex orders"},
     WashTradeRefused),
    (403, "trading", {"code": 40310100, "message": "trade denied due to pattern day trading protection"},
     DayTradeRefused),
    (403, "trading", {"code": 40310000, "message": "account is not authorized to trade"}, AccountRestricted),
    (403, "trading", {"code": 40310000, "message": "account is restricted to liquidation only"},
     AccountRestricted),
    (403, "trading", {"code": 40310000, "message": "forbidden"}, AccountRestricted),
    (403, "trading", {"message": "forbidden"}, AccountRestricted),
    (403, "trading", None, AccountRestricted),
    (422, "trading", {"base_price": "483.505", "code": 42210000,
                      "message": "stop_loss.stop_price must be <= base_price - 0.01"}, PriceMoved),
    (422, "trading", {"code": 42210000, "message": "invalid limit_price 290.123. sub-penny increment does "
                      "not fulfill minimum pricing criteria"}, BrokerRejected),
    (403, "data", {"message": "subscription does not permit querying recent SIP data"}, FeedNotPermitted),
    (403, "data", {"code": 42210000, "message": "subscription does not permit querying recent SIP data"},
     FeedNotPermitted),
    (403, "data", {"message": "forbidden"}, DataForbidden),
    (401, "data", {"message": "unauthorized."}, DataForbidden),
]  # fmt: skip


@pytest.mark.parametrize(("status", "api", "body", "kind"), REFUSALS)
def test_refusals_are_classified_by_message_and_never_bad_keys(
    status: int, api: str, body: dict[str, Any] | None, kind: type[BrokerRejected]
) -> None:
    exc: BaseException = api_error(status, body) if body is not None else http_error(status, "Forbidden")
    fn = Script(exc)
    with pytest.raises(BrokerRejected) as info:
        run(fn, api=api)
    assert type(info.value) is kind
    assert not isinstance(info.value, BrokerAuthError)
    assert fn.calls == 1  # a refusal is never retried


def test_refusal_details_reach_the_message() -> None:
    body = {
        "base_price": "101.23",
        "code": 42210000,
        "message": "stop_loss.stop_price must be <= base_price - 0.01",
    }
    with pytest.raises(PriceMoved) as info:
        run(Script(api_error(422, body)))
    assert info.value.details["base_price"] == "101.23" and "base_price 101.23" in str(info.value)


def test_403_buying_power_is_a_rejection() -> None:
    body = {
        "buying_power": "176531.28",
        "code": 40310000,
        "cost_basis": "48640000",
        "message": "insufficient buying power",
    }
    fn = Script(api_error(403, body))
    with pytest.raises(InsufficientBuyingPower) as info:
        run(fn)
    assert info.value.status == 403 and info.value.code == 40310000
    assert "insufficient buying power" in str(info.value)
    assert fn.calls == 1


def test_404_and_422() -> None:
    with pytest.raises(BrokerNotFound, match="position does not exist"):
        run(Script(api_error(404, {"code": 40410000, "message": "position does not exist"})))
    fn = Script(
        api_error(422, {"code": 42210000, "message": "invalid limit_price 290.123. sub-penny increment"})
    )
    with pytest.raises(BrokerRejected) as info:
        run(fn)
    assert info.value.status == 422 and info.value.code == 42210000 and fn.calls == 1


@pytest.mark.parametrize(
    "exc",
    [
        requests.ReadTimeout("read timed out"),
        requests.ConnectionError("reset"),
        http_error(500),
        http_error(504, {"code": 50410000, "message": "gateway timeout"}),
        http_error(429, "Too Many Requests"),
    ],
)
def test_non_idempotent_is_never_retried(exc: BaseException) -> None:
    fn = Script(exc)
    with pytest.raises(OrderOutcomeUnknown, match="outcome unknown") as info:
        run(fn, idempotent=False)
    assert fn.calls == 1
    assert isinstance(info.value, BrokerError)
    assert not isinstance(info.value, BrokerUnavailable)  # distinguishable from "gave up"


def test_non_idempotent_definitive_errors_keep_their_type() -> None:
    with pytest.raises(BrokerRejected):
        run(
            Script(api_error(422, {"code": 40010001, "message": "client_order_id must be unique"})),
            idempotent=False,
        )
    with pytest.raises(BrokerAuthError):
        run(Script(http_error(401)), idempotent=False)


def test_scrub_applies_to_messages() -> None:
    fn = Script(api_error(422, {"code": 40010001, "message": "bad key PKSECRET123"}))
    with pytest.raises(BrokerRejected) as info:
        run(fn, scrub=lambda s: s.replace("PKSECRET123", "***"), what="GET PKSECRET123")
    assert "PKSECRET123" not in str(info.value)


def test_broker_errors_pass_through_untouched() -> None:
    fn = Script(BrokerNotFound("nope"))
    with pytest.raises(BrokerNotFound, match="nope"):
        run(fn)
    assert fn.calls == 1


def test_unknown_exceptions_are_not_retried() -> None:
    fn = Script(KeyError("x"))
    with pytest.raises(BrokerError):
        run(fn)
    assert fn.calls == 1


def test_classify_reads_code_from_body_and_apierror() -> None:
    f = classify(api_error(403, {"code": 40310000, "message": "insufficient qty available"}))
    assert (f.kind, f.status, f.code, f.transient) == ("http", 403, 40310000, False)
    f = classify(http_error(503, "<html>down</html>"))
    assert (f.status, f.code, f.transient) == (503, None, True)
    assert classify(requests.ReadTimeout()).kind == "timeout"


def test_backoff_delay_bounds() -> None:
    for attempt in range(1, 10):
        for r in (0.0, 0.3, 0.999):
            d = backoff_delay(attempt, None, base_delay=0.5, max_delay=8.0, rng=lambda r=r: r)
            assert 0 < d <= 8.0


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, TransientBrokerError), (500, TransientBrokerError), (503, TransientBrokerError),
     (501, BrokerUnavailable), (422, BrokerRejected), (404, BrokerNotFound), (401, BrokerAuthError)],
)  # fmt: skip
def test_retryability_is_the_error_type(status: int, kind: type) -> None:
    """Only a TransientBrokerError is tried again; a 501 is 'unavailable' but not worth a retry."""
    err = to_broker_error(classify(http_error(status, {"code": status * 100_000, "message": "x"})))
    assert type(err) is kind
    fn = Script(http_error(status, {"code": status * 100_000, "message": "x"}))
    if kind is TransientBrokerError:
        assert run(fn)[0] == "ok" and fn.calls == 2
    else:
        with pytest.raises(kind):
            run(fn)
        assert fn.calls == 1


# -- issue 17: what failed below HTTP, in words ------------------------------------------------------


def _wrapped(inner: BaseException, url: str = "https://paper-api.alpaca.markets/v2/account") -> Exception:
    """The chain requests raises: ConnectionError(MaxRetryError(reason=NewConnectionError(...)))."""
    import requests as rq

    try:
        try:
            raise inner
        except BaseException as exc:
            raise OSError("Failed to establish a new connection") from exc
    except OSError as middle:
        outer = rq.exceptions.ConnectionError(middle, request=rq.Request("GET", url).prepare())
        outer.__context__ = middle
        return outer


@pytest.mark.parametrize(
    ("inner", "words"),
    [
        (socket.gaierror(-2, "Name or service not known"), "DNS lookup of paper-api.alpaca.markets failed"),
        (ConnectionRefusedError(111, "Connection refused"), "connection refused by paper-api.alpaca.markets"),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "TLS handshake with"),
        (ConnectionResetError(104, "reset"), "paper-api.alpaca.markets closed the connection"),
    ],
)
def test_connection_failures_say_what_failed_and_where(inner: BaseException, words: str) -> None:
    failure = classify(_wrapped(inner))
    assert failure.kind == "connection" and words in failure.message
    assert "ConnectionError" not in failure.message


def test_timeouts_say_which_timeout() -> None:
    import requests as rq

    request = rq.Request("GET", "https://paper-api.alpaca.markets/v2/clock").prepare()
    connect = classify(rq.exceptions.ConnectTimeout("x", request=request))
    read = classify(rq.exceptions.ReadTimeout("x", request=request))
    assert (
        connect.message == "no connection to paper-api.alpaca.markets within the timeout (connect timed out)"
    )
    assert read.message == "paper-api.alpaca.markets did not answer within the timeout (read timed out)"
