"""Per-token rate limiting with the `limits` library (moving window, in-memory storage).

One `RateLimiter` lives in the web application for the life of the process, so every request of a token
counts against the same window. A moving window has no burst at window edges: at most `per_minute` requests
in any 60 seconds.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from bot.api.errors import ApiError


class RateLimiter:
    def __init__(self, per_minute: int) -> None:
        self.item = RateLimitItemPerMinute(per_minute)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, key: str) -> None:
        """Count one request for `key`; raise a 429 carrying `Retry-After` when the window is full."""
        if self._limiter.hit(self.item, key):
            return
        reset_at, _remaining = self._limiter.get_window_stats(self.item, key)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests: this token may make {self.item.amount} per minute; retry in {retry_after} s",
            details={"limit_per_minute": self.item.amount, "retry_after_seconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
