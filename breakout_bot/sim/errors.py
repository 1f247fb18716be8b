"""The simulator's refusals, as Alpaca words them (sim/wire.py renders the body {"code","message", ...})."""

from __future__ import annotations


class ApiError(Exception):
    """An Alpaca-style error (trading-api.json components.schemas.Error: code, message).

    Codes follow Alpaca: 40010001 validation, 40110000 unauthorized, 40310000 forbidden/buying
    power/qty, 40410000 not found, 42210000 unprocessable (prices), 42910000 rate limit.
    `extra` fields are merged into the body, as Alpaca does (e.g. base_price, buying_power). A code of
    None sends no code (Alpaca's 401 and market-data errors carry a message only).
    """

    def __init__(self, status: int, code: int | None, message: str, **extra: str | float) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra  # money as numbers: the wire writes them as Alpaca's decimal strings


def invalid(message: str, **extra: str | float) -> ApiError:
    """422 with the generic validation code."""
    return ApiError(422, 40010001, message, **extra)


def unprocessable(message: str, **extra: str | float) -> ApiError:
    """422 with the pricing/unprocessable code (sub-penny, bracket legs, not cancelable...)."""
    return ApiError(422, 42210000, message, **extra)


def forbidden(message: str, **extra: str | float) -> ApiError:
    return ApiError(403, 40310000, message, **extra)


def not_found(message: str) -> ApiError:
    return ApiError(404, 40410000, message)


def unauthorized() -> ApiError:
    """401 as Alpaca answers it: `{"message": "unauthorized."}`, no code (a third-party live probe, 2026;
    the Learn errors article shows "unauthorized")."""
    return ApiError(401, None, "unauthorized.")


def day_trade_denied() -> ApiError:
    """The legacy pattern-day-trader refusal (Learn errors article; obsolete since FINRA retired the rule
    on 2026-06-04, Alpaca changelog 2026-06-03)."""
    return ApiError(403, 40310100, "trade denied due to pattern day trading protection")


def sip_not_permitted() -> ApiError:
    """Market data, a plan without SIP asking for recent SIP data (Market Data FAQ; users' reports show
    the message alone)."""
    return ApiError(403, None, "subscription does not permit querying recent SIP data")
