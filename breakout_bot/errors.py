"""Errors a user can act on. The CLI prints their message as one line and exits with their code."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an environment problem: one clear line, non-zero exit, never a traceback."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(UserError):
    """Invalid configuration (flags, environment, .env)."""

    exit_code = 2


class DataError(UserError, ValueError):
    """A bar file (or cache) that cannot be read as one-minute bars. A ValueError too: it is bad input."""

    exit_code = 2


class AuthError(UserError):
    """The broker refused our credentials (HTTP 401/403)."""

    exit_code = 3


class BrokerUnavailable(UserError):
    """The broker (or simulator) could not be reached after bounded retries."""

    exit_code = 4


class JournalError(UserError):
    """past_trades.json is unreadable, corrupt or not writable."""

    exit_code = 5
