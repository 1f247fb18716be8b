"""One error tree. Every error the program raises on purpose is a BotError: its type says what the user
can do about it (its exit code) and whether trying again can help (`TransientBrokerError`). The CLI
turns a BotError into one line (cli/main.py, `user_message`); nothing below the CLI prints.

    BotError
    ├── UserError (exit 2)              bad input or environment: the user fixes it
    │   ├── ConfigError (2)             flags, environment, .env
    │   ├── DataError (2)               a bar file or cache that is not one-minute bars
    │   └── JournalError (5)            past_trades.json unreadable, corrupt or not writable
    └── BrokerError (1)                 a broker call failed (after the adapter's bounded retries)
        ├── BrokerAuthError (3)         the trading API refused the keys (401)
        ├── BrokerRejected (1)          this request is refused (400/409/422, any trading 403): never
        │   │                           resend it as it is. By Alpaca's message (docs/simulator.md):
        │   ├── InsufficientQty         open orders hold the shares (a cancel still in flight)
        │   ├── InsufficientBuyingPower
        │   ├── ShortRefused            the account may not short, or the asset is not easy to borrow
        │   ├── WashTradeRefused        an opposite order of the symbol is open ("use complex orders")
        │   ├── DayTradeRefused         the legacy pattern-day-trader protection (40310100)
        │   ├── AccountRestricted       any other trading 403 (not authorized to trade, liquidation only)
        │   ├── PriceMoved              422 with `base_price`: the legs are invalid at today's price
        │   ├── FeedNotPermitted (2)    the data plan lacks the feed (recent SIP data): use --feed iex
        │   └── DataForbidden           any other market-data 401/403 (the plan, or the keys there)
        ├── BrokerNotFound (1)          404: no such order, position or asset
        ├── OrderOutcomeUnknown (1)     a submission that may or may not have arrived: look it up
        └── BrokerUnavailable (4)       the broker did not serve the request (5xx, 429, unreachable), or
            │                           still did not after the retries
            └── TransientBrokerError (4) 429, 500, 502-504, timeouts, connection errors: another try
                                        may succeed (broker/retry.py retries idempotent calls on it)
"""

from __future__ import annotations


class BotError(Exception):
    """An error the program raises on purpose: one line for the user, never a traceback."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UserError(BotError):
    """Bad input or an environment problem: one clear line, non-zero exit, never a traceback."""

    exit_code = 2


class ConfigError(UserError):
    """Invalid configuration (flags, environment, .env)."""


class DataError(UserError, ValueError):
    """A bar file (or cache) that cannot be read as one-minute bars. A ValueError too: it is bad input."""


class JournalError(UserError):
    """past_trades.json is unreadable, corrupt or not writable."""

    exit_code = 5


class BrokerError(BotError):
    """A broker call failed after the adapter's bounded retries."""


class BrokerAuthError(BrokerError):
    """401, or a 403 that is not a rejection of the request: the keys may not do this. Never retried."""

    exit_code = 3


class BrokerRejected(BrokerError):
    """The broker refused this request (422, or a 403 on the trading API): do not resend it as it is.
    `details` are the body's context fields (base_price, held_for_orders, available, ...)."""

    def __init__(
        self, message: str, status: int, code: int | None = None, details: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = dict(details or {})


class InsufficientQty(BrokerRejected):
    """403 "insufficient qty available for order": open orders hold the shares (held_for_orders), e.g.
    bracket legs whose cancel is still being processed. Worth another try once they are canceled."""


class InsufficientBuyingPower(BrokerRejected):
    """403 "insufficient buying power"."""


class ShortRefused(BrokerRejected):
    """403: "account is not allowed to short" (equity under $2,000, or shorting disabled), or the asset
    "cannot be sold short" (not shortable, or not easy to borrow today)."""


class WashTradeRefused(BrokerRejected):
    """403/40310000 or 422/42210000 "potential wash trade detected. use complex orders"."""


class DayTradeRefused(BrokerRejected):
    """403/40310100 "trade denied due to pattern day trading protection" (legacy: FINRA retired the rule
    on 2026-06-04; other accounts may still send it)."""


class AccountRestricted(BrokerRejected):
    """Any other 403 of the trading API: the account may not do this now ("account is not authorized to
    trade", "restricted to liquidation only", "forbidden"). The keys are fine: only 401 says otherwise."""


class PriceMoved(BrokerRejected):
    """422 with `base_price`: the bracket's legs are on the wrong side of the price at submission."""


class FeedNotPermitted(BrokerRejected):
    """Market data: the plan does not include this feed ("subscription does not permit querying recent
    SIP data"; the stream's 409 "insufficient subscription"). Free plans use --feed iex."""

    exit_code = 2


class DataForbidden(BrokerRejected):
    """Any other 401/403 of the market-data API: the plan, or the keys there (Market Data FAQ)."""


class BrokerNotFound(BrokerError):
    """404: no such order / position / asset."""


class OrderOutcomeUnknown(BrokerError):
    """A non-idempotent request (order submission) hit a timeout, 5xx or 429: it may or may not have
    reached the broker. Resolve with a lookup by client_order_id; never by blindly sending again."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BrokerUnavailable(BrokerError):
    """The broker (or simulator) did not serve the request, or kept failing through the bounded retries."""

    exit_code = 4


class TransientBrokerError(BrokerUnavailable):
    """429, 500, 502-504, a timeout or a broken connection: an idempotent call is worth another try."""
