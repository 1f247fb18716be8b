"""Bounded retries for broker calls, and the mapping of HTTP failures to the error tree (errors.py).

Policy (docs/design.md, "Lessons from the bugs of peers"):

* 429, 500, 502, 503, 504, timeouts and connection errors are transient (TransientBrokerError): an
  *idempotent* call is retried with jittered exponential backoff (honouring Retry-After /
  X-Ratelimit-Reset, capped); the type decides, not the call site.
* Only a 401 of the trading API means the keys are wrong (BrokerAuthError). A 403 is a refusal of this
  request, told apart by Alpaca's message (the code is only a hint: the same wash-trade message comes as
  403/40310000 and as 422/42210000): insufficient qty (shares held by open orders), buying power,
  shorting, wash trade, the legacy pattern-day-trader code 40310100, anything else an account
  restriction. On the market-data API a 401/403 may be the plan or the keys (Market Data FAQ): the SIP
  refusal ("subscription does not permit querying recent SIP data") is FeedNotPermitted, the rest
  DataForbidden. docs/simulator.md lists each body with its source.
* 404 is BrokerNotFound; 400/409/422 are BrokerRejected (422 with `base_price`: PriceMoved); none is
  retried.
* A *non-idempotent* call (an order submission) is never retried here: a transient failure raises
  OrderOutcomeUnknown, and the caller resolves the outcome by client_order_id.

This module knows no SDK: it classifies exceptions by duck typing (``status_code``/``code``/``response``
attributes as on alpaca-trade-api's and alpaca-py's APIError, or a ``requests.HTTPError``), so the
adapters stay the only importers of the libraries.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from ..errors import (
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

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DAY_TRADE_CODE = 40310100  # "trade denied due to pattern day trading protection" (legacy)
# The body's context fields worth a log line (Alpaca adds them to refusals).
SHOWN_DETAILS = ("base_price", "held_for_orders", "available", "existing_qty", "buying_power", "cost_basis")
# Trading-API refusals by message (lower case substring -> type), most specific first.
REFUSALS: tuple[tuple[str, type[BrokerRejected]], ...] = (
    ("insufficient qty", InsufficientQty),
    ("insufficient buying power", InsufficientBuyingPower),
    ("wash trade", WashTradeRefused),
    ("pattern day trad", DayTradeRefused),
    ("not allowed to short", ShortRefused),
    ("cannot be sold short", ShortRefused),
    ("not shortable", ShortRefused),
    ("subscription does not permit", FeedNotPermitted),
    ("insufficient subscription", FeedNotPermitted),
)


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong with one attempt, independent of the exception type."""

    kind: str  # "http" | "timeout" | "connection" | "other"
    status: int | None = None
    code: int | None = None
    message: str = ""
    retry_after: float | None = None  # seconds, from Retry-After / X-Ratelimit-Reset
    details: tuple[tuple[str, str], ...] = ()  # the body's context fields (base_price, held_for_orders...)

    @property
    def transient(self) -> bool:
        """Would another try help? The error type says (TransientBrokerError)."""
        return isinstance(to_broker_error(self), TransientBrokerError)


def _response_of(exc: BaseException) -> Any:
    resp = getattr(exc, "response", None)
    return resp if resp is not None and hasattr(resp, "status_code") else None


def _attribute(exc: BaseException, name: str) -> Any:
    """exc.<name>, or None. alpaca-py's APIError.code parses the body on every read and raises
    KeyError for a body without "code" (market data's errors) and JSONDecodeError for a non-JSON one
    (a proxy's HTML page): getattr's default only covers AttributeError."""
    try:
        return getattr(exc, name, None)
    except Exception:
        return None


def _body(resp: Any) -> Mapping[str, Any] | None:
    try:
        body = resp.json()
    except (ValueError, AttributeError, json.JSONDecodeError):
        return None
    return body if isinstance(body, Mapping) else None


def _retry_after(headers: Mapping[str, str] | None, epoch_now: Callable[[], float]) -> float | None:
    """Seconds to wait according to the response headers, or None when they say nothing usable."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    ra = lower.get("retry-after")
    if ra:
        try:
            return max(0.0, float(ra))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(ra)
                return max(0.0, when.timestamp() - epoch_now())
            except (TypeError, ValueError):
                pass
    reset = lower.get("x-ratelimit-reset")
    if reset:
        try:
            delta = float(reset) - epoch_now()
        except ValueError:
            return None
        # An epoch reset time is only meaningful when our clock agrees with the server's (the
        # simulator's virtual clock does not): trust it only inside one rate-limit window.
        return delta if 0.0 <= delta <= 61.0 else None
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (causes, contexts, urllib3's `reason`, exception args)."""
    out: list[BaseException] = []
    stack: list[object] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or any(item is seen for seen in out):
            continue
        out.append(item)
        stack.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args])
    return out


def _where(exc: BaseException) -> str:
    """host[:port] the failed request went to, when the exception says."""
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    if isinstance(url, str) and url:
        parts = urlsplit(url)
        if parts.hostname:
            return parts.hostname + (f":{parts.port}" if parts.port else "")
    return "the server"


def describe_connection_failure(exc: BaseException) -> str:
    """What went wrong below HTTP, in words, and where: DNS, refused, timed out, TLS, reset."""
    where = _where(exc)
    causes = _causes(exc)
    if any(isinstance(c, requests.exceptions.ProxyError) for c in causes):
        return f"the HTTP proxy for {where} failed (HTTPS_PROXY / HTTP_PROXY)"
    if any(isinstance(c, socket.gaierror) for c in causes):
        return f"DNS lookup of {where.split(':')[0]} failed (no such host, or no name server reachable)"
    if any(isinstance(c, ssl.SSLError | requests.exceptions.SSLError) for c in causes):
        detail = next(
            (str(c.reason) for c in causes if isinstance(c, ssl.SSLError) and getattr(c, "reason", None)), ""
        )
        return f"TLS handshake with {where} failed" + (
            f" ({detail.lower().replace('_', ' ')})" if detail else ""
        )
    if any(isinstance(c, requests.ConnectTimeout) for c in causes):
        return f"no connection to {where} within the timeout (connect timed out)"
    if any(isinstance(c, requests.Timeout | TimeoutError | socket.timeout) for c in causes):
        return f"{where} did not answer within the timeout (read timed out)"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return f"connection refused by {where} (nothing listening there)"
    if any(isinstance(c, ConnectionResetError | BrokenPipeError) for c in causes):
        return f"{where} closed the connection"
    return f"connection to {where} failed ({type(exc).__name__})"


def classify(exc: BaseException, epoch_now: Callable[[], float] = time.time) -> Failure:
    """Map any exception from an HTTP call to a Failure."""
    if isinstance(exc, requests.Timeout | TimeoutError):
        return Failure("timeout", message=describe_connection_failure(exc))
    if isinstance(exc, requests.ConnectionError | ConnectionError):
        return Failure("connection", message=describe_connection_failure(exc))
    resp = _response_of(exc)
    status = getattr(exc, "status_code", None)
    if status is None and resp is not None:
        status = resp.status_code
    if status is None:
        if isinstance(exc, requests.RequestException):
            # chunked-encoding / decoding / truncated-body errors: the exchange broke mid-way.
            return Failure("connection", message=f"request error: {type(exc).__name__}")
        return Failure("other", message=f"{type(exc).__name__}: {exc}")
    body = _body(resp) if resp is not None else None
    code: int | None = None
    raw_code = body.get("code") if body is not None and "code" in body else _attribute(exc, "code")
    if isinstance(raw_code, int) and raw_code != status:
        code = raw_code
    elif isinstance(raw_code, str) and raw_code.isdigit() and int(raw_code) != status:
        code = int(raw_code)
    message = ""
    if body is not None and isinstance(body.get("message"), str):
        message = str(body["message"])
    if not message:
        text = str(exc)
        if not text and resp is not None:
            text = (getattr(resp, "text", "") or "")[:200]
        message = text
    headers = getattr(resp, "headers", None) if resp is not None else None
    details = tuple(
        (str(k), str(v)) for k, v in (body or {}).items() if k not in ("code", "message") and v is not None
    )
    return Failure(
        "http",
        status=int(status),
        code=code,
        message=message,
        retry_after=_retry_after(headers, epoch_now),
        details=details,
    )


def _refusal(f: Failure, api: str) -> type[BrokerRejected]:
    """The type of a refusal, by Alpaca's message first (the code is a hint only)."""
    text = f.message.lower()
    kind = next((k for needle, k in REFUSALS if needle in text), None)
    if kind is not None:
        return kind
    if f.code == DAY_TRADE_CODE:
        return DayTradeRefused
    if api == "data" and f.status in (401, 403):
        return DataForbidden
    if f.status == 403:
        return AccountRestricted
    if f.status == 422 and any(k == "base_price" for k, _ in f.details):
        return PriceMoved
    return BrokerRejected


def to_broker_error(f: Failure, what: str = "", api: str = "trading") -> BrokerError:
    """The BrokerError of a failure: its type says whether another try may help (TransientBrokerError).
    `api`: "trading" or "data" (a market-data 401/403 is not proof of bad keys)."""
    prefix = f"{what}: " if what else ""
    detail = f"{prefix}{f.message}" if f.message else f"{prefix}{f.kind}"
    shown = [f"{k} {v}" for k, v in f.details if k in SHOWN_DETAILS]
    if shown:
        detail += f" ({', '.join(shown)})"
    if f.status is not None:
        detail += f" (HTTP {f.status}" + (f", code {f.code})" if f.code else ")")
    if f.kind == "http" and f.status is not None:
        if f.status == 401 and api != "data":
            return BrokerAuthError(detail)
        if f.status in (401, 403, 400, 409, 422):
            return _refusal(f, api)(detail, status=f.status, code=f.code, details=dict(f.details))
        if f.status == 404:
            return BrokerNotFound(detail)
        if f.status in RETRY_STATUSES:
            return TransientBrokerError(detail)
        if 400 <= f.status < 500:
            return BrokerRejected(detail, status=f.status, code=f.code)
        return BrokerUnavailable(detail)
    if f.kind in ("timeout", "connection"):
        return TransientBrokerError(detail)
    return BrokerError(detail)


def backoff_delay(
    attempt: int,
    failure: Failure | None,
    *,
    base_delay: float,
    max_delay: float,
    rng: Callable[[], float],
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): jittered exponential backoff,
    or the server's Retry-After/X-Ratelimit-Reset when it gives one; never more than max_delay."""
    if failure is not None and failure.retry_after is not None:
        return min(max_delay, failure.retry_after + base_delay * rng())
    expo = min(max_delay, base_delay * (2 ** (attempt - 1)))
    # "equal jitter": half fixed, half random, so concurrent callers spread out but still back off.
    return min(max_delay, expo / 2 + (expo / 2) * rng())


def call_with_retries(
    fn: Callable[[], T],
    *,
    idempotent: bool,
    what: str = "",
    max_attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
    epoch_now: Callable[[], float] = time.time,
    scrub: Callable[[str], str] = lambda s: s,
    api: str = "trading",
) -> T:
    """Run `fn` with the retry policy of this module; raise a BrokerError subclass on failure.

    ``scrub`` is applied to every message we build (the adapter passes one that removes its keys);
    ``api`` says which of Alpaca's APIs answered ("trading" or "data").
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except BrokerError:
            raise
        except Exception as exc:
            failure = classify(exc, epoch_now)
            failure = Failure(
                failure.kind,
                failure.status,
                failure.code,
                scrub(failure.message),
                failure.retry_after,
                failure.details,
            )
            err = to_broker_error(failure, scrub(what), api)
            if not isinstance(err, TransientBrokerError):
                raise err from None
            if not idempotent:
                raise OrderOutcomeUnknown(f"outcome unknown: {err}", status=failure.status) from None
            if attempt >= max_attempts:
                raise BrokerUnavailable(f"{err} (gave up after {attempt} attempts)") from None
            delay = backoff_delay(attempt, failure, base_delay=base_delay, max_delay=max_delay, rng=rng)
            log.warning(
                "%s failed (%s); retry %d/%d in %.2fs",
                scrub(what) or "broker call",
                failure.message or failure.kind,
                attempt,
                max_attempts - 1,
                delay,
                extra={"console": False},  # routine: the log file keeps it; a final failure is reported once
            )
            sleep(delay)
