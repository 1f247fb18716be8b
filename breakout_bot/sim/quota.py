"""The simulator's server-side request quota, Alpaca's REST rate limit: 200 requests per minute per API key (alpaca-docs trading-api/_index.md
"Rate Limit"), here a sliding window of 60 *virtual* seconds, one window per (key, API): the trading
API and the market-data API count separately, as on Alpaca. Rejected (429) requests do not count."""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

WINDOW = 60.0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # epoch seconds (virtual) when a slot frees up: X-Ratelimit-Reset

    def headers(self) -> dict[str, str]:
        """Trading API spelling X-Ratelimit-* (forum answer quoted in NOTES.md sect. 4)."""
        return {
            "X-Ratelimit-Limit": str(self.limit),
            "X-Ratelimit-Remaining": str(self.remaining),
            "X-Ratelimit-Reset": str(self.reset),
        }


class RequestQuota:
    def __init__(self, limit: int = 200) -> None:
        self.limit = limit
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str, api: str, now: float) -> Verdict:
        with self._lock:
            q = self._hits.setdefault((key, api), deque())
            while q and q[0] <= now - WINDOW:
                q.popleft()
            allowed = len(q) < self.limit
            if allowed:
                q.append(now)
            reset = math.ceil((q[0] if q else now) + WINDOW)
            return Verdict(allowed, self.limit, max(0, self.limit - len(q)), reset)
