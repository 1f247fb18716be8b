"""Scripted faults (POST /sim/faults): the bot's failure paths are tested against these.

An HTTP fault answers the next `count` matching requests with `http_status` instead of the real
response; with "after": true the request is executed first and only the response is replaced (the
"did my order arrive?" case: a 504 on POST /v2/orders that did create the order).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .errors import ApiError, unauthorized

_BODIES = {
    429: (42910000, "rate limit exceeded"),
    500: (50010000, "internal server error"),
    502: (50210000, "bad gateway"),
    503: (50310000, "service unavailable"),
    504: (50410000, "gateway timeout"),
    403: (40310000, "forbidden"),
}


@dataclass
class HttpFault:
    status: int
    count: int
    paths: str = ""  # path prefix; "" = every /v2 path
    after: bool = False  # process the request, then fail the response
    method: str = ""  # "" = any method; else only this one (e.g. DELETE: a close, not a position read)

    def error(self) -> ApiError:
        if self.status == 401:
            return unauthorized()
        code, message = _BODIES.get(self.status, (self.status * 100_000, "injected fault"))
        return ApiError(self.status, code, message)


class FaultState:
    """Mutable, thread-safe set of active faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._http: list[HttpFault] = []
        self.latency_ms = 0  # wall-clock delay before each REST response
        self.forbidden = False  # every authenticated REST call -> 403

    def add_http(self, fault: HttpFault) -> None:
        with self._lock:
            self._http.append(fault)

    def take_http(self, path: str, method: str = "GET") -> HttpFault | None:
        """Consume one matching HTTP fault, if any (first added, first used)."""
        with self._lock:
            for f in self._http:
                if f.method and f.method.upper() != method.upper():
                    continue
                if f.count > 0 and path.startswith(f.paths or "/v2"):
                    f.count -= 1
                    if f.count == 0:
                        self._http.remove(f)
                    return f
            return None

    def clear(self) -> None:
        with self._lock:
            self._http.clear()
            self.latency_ms = 0
            self.forbidden = False

    def describe(self) -> dict[str, object]:
        with self._lock:
            return {
                "http": [
                    {
                        "http_status": f.status,
                        "count": f.count,
                        "paths": f.paths,
                        "after": f.after,
                        "method": f.method,
                    }
                    for f in self._http
                ],
                "latency_ms": self.latency_ms,
                "forbidden": self.forbidden,
            }
