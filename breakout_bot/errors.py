"""One error tree. Every error the program raises on purpose is a BotError: its type says what the user
can do about it (its exit code) and whether trying again can help (`TransientBrokerError`). The CLI
turns a BotError into one line (cli/main.py, `user_message`); nothing below the CLI prints.

    BotError
    ├── UserError (exit 2)              bad input or environment: the user fixes it
    │   ├── ConfigError (2)             flags, environment, .env
    │   ├── DataError (2)               a bar file or cache that is not one-minute bars
    │   └── JournalError (5)            past_trades.json unreadable, corrupt or not writable
    └── BrokerError (1)                 a broker call failed (after the adapter's bounded retries)
        ├── BrokerAuthError (3)         the keys are refused (401; a 403 that is not a rejection)
        ├── BrokerRejected (1)          this request is refused (422; 403 + Alpaca's code): never resend it
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
    """422 (or 403 for buying power / shortability): the request is invalid; do not resend it."""

    def __init__(self, message: str, status: int, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


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
