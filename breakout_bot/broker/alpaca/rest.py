"""HTTP to Alpaca: every request takes a slot of the shared throttle and carries a timeout; every call
is retried by the policy of broker/retry.py (bounded, never an order submission); our keys never
appear in a message we build."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from ...redaction import Redactor
from ..retry import call_with_retries
from ..throttle import RequestThrottle
from .binding import SdkBinding, SdkClient


class ThrottledSession(requests.Session):
    """Every request: take a throttle slot first, and never wait forever for an answer."""

    def __init__(self, throttle: RequestThrottle, timeout: float) -> None:
        super().__init__()
        self._throttle = throttle
        self._timeout = timeout
        self.sent = 0

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        self._throttle.acquire()
        self.sent += 1
        return super().request(method, url, *args, **kwargs)


class AlpacaRest:
    """The trading and market-data REST APIs of one account, as JSON, with our retry policy, over the
    REST client of an SDK (`binding`)."""

    def __init__(
        self,
        binding: SdkBinding,
        key_id: str,
        secret_key: str,
        base_url: str,
        data_url: str,
        throttle: RequestThrottle,
        timeout: float,
        *,
        sleep: Callable[[float], None] | None = None,
        max_attempts: int = 5,
        rng: Callable[[], float] | None = None,
        redact: Redactor | None = None,
    ) -> None:
        self.throttle = throttle
        self.timeout = timeout
        self._session = ThrottledSession(throttle, timeout)
        self.sdk: SdkClient = binding.rest(key_id, secret_key, base_url, data_url, self._session)
        self._sleep = sleep or time.sleep
        self._max_attempts = max_attempts
        self._rng = rng or random.random
        self.redact = redact or Redactor([secret_key, key_id])

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far (all attempts)."""
        return self._session.sent

    def call(self, what: str, fn: Callable[[], Any], *, idempotent: bool = True, api: str = "trading") -> Any:
        return call_with_retries(
            fn,
            idempotent=idempotent,
            what=what,
            max_attempts=self._max_attempts,
            sleep=self._sleep,
            rng=self._rng,
            scrub=self.redact,
            api=api,
        )

    def get(self, what: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.call(what, lambda: self.sdk.get(path, dict(params) if params else None))

    def post(self, what: str, path: str, body: Mapping[str, Any]) -> Any:
        """Never retried: a submission whose outcome is unclear raises OrderOutcomeUnknown."""
        return self.call(what, lambda: self.sdk.post(path, dict(body)), idempotent=False)

    def patch(self, what: str, path: str, body: Mapping[str, Any]) -> Any:
        """Never retried: a replace whose outcome is unclear raises OrderOutcomeUnknown."""
        return self.call(what, lambda: self.sdk.patch(path, dict(body)), idempotent=False)

    def delete(self, what: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.call(what, lambda: self.sdk.delete(path, dict(params) if params else None))

    def data_get(self, what: str, path: str, params: Mapping[str, Any]) -> Any:
        return self.call(
            what, lambda: self.sdk.data_get(path, data=dict(params), api_version="v2"), api="data"
        )

    def close(self) -> None:
        self.sdk.close()

    def __repr__(self) -> str:
        return f"<AlpacaRest {self.sdk!r}>"
