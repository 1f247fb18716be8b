"""The broker's health as the runner sees it, for its status (and the notifications that read it).

`watched(broker, health)` wraps the runner's broker and market data: every call's outcome is counted.
A call that got no answer (BrokerUnavailable: the adapter's bounded retries exhausted, a timeout, a
5xx; OrderOutcomeUnknown) is a failure; any answer, a refusal or a "not found" included, ends a run of
failures. A 401 (BrokerAuthError) after the start is `keys_refused` until a call succeeds again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar, cast

from ..errors import BrokerAuthError, BrokerError, BrokerUnavailable, OrderOutcomeUnknown

T = TypeVar("T")


@dataclass
class BrokerHealth:
    failures: int = 0  # calls in a row that got no answer (each after the adapter's own retries)
    last_error: str = ""
    keys_refused: str | None = None  # the refusal's text while the broker refuses the keys

    def answered(self) -> None:
        self.failures, self.keys_refused = 0, None

    def failed(self, exc: BrokerError) -> None:
        self.failures += 1
        self.last_error = describe(exc)

    def refused(self, exc: BrokerAuthError) -> None:
        self.keys_refused = describe(exc)


class _Watched:
    """Any broker-like object, its calls counted in a BrokerHealth (attributes pass through)."""

    def __init__(self, inner: object, health: BrokerHealth) -> None:
        self._inner = inner
        self._health = health

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr
        health = self._health

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = attr(*args, **kwargs)
            except BrokerAuthError as exc:
                health.refused(exc)
                raise
            except (BrokerUnavailable, OrderOutcomeUnknown) as exc:
                health.failed(exc)
                raise
            except BrokerError:
                health.answered()  # a refusal or "not found": the broker answered
                raise
            health.answered()
            return result

        return call

    def __repr__(self) -> str:
        return repr(self._inner)


def watched(inner: T, health: BrokerHealth) -> T:
    """`inner` with its calls counted in `health` (typed as `inner`: every attribute passes through)."""
    return cast(T, _Watched(inner, health))


def describe(exc: BaseException) -> str:
    """An error in one line: its type and the first line of its text."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
