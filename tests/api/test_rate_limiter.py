"""The moving-window rate limiter on its own, with a test clock."""

from __future__ import annotations

import pytest

from bot.api.errors import ApiError
from bot.api.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_a_moving_window_allows_per_minute_in_any_60_seconds() -> None:
    clock = Clock()
    limiter = RateLimiter(3, clock=clock)
    for _ in range(2):
        limiter.check("a")
    clock.now += 30
    limiter.check("a")
    with pytest.raises(ApiError) as refused:
        limiter.check("a")
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "30"
    limiter.check("b")  # per key
    clock.now += 30  # the first two left the window
    limiter.check("a")
    limiter.check("a")
    with pytest.raises(ApiError):
        limiter.check("a")


def test_retry_after_is_at_least_one_second_and_refusals_do_not_count() -> None:
    clock = Clock()
    limiter = RateLimiter(1, clock=clock)
    limiter.check("a")
    clock.now += 59.9
    for _ in range(5):
        with pytest.raises(ApiError) as refused:
            limiter.check("a")
        assert refused.value.headers["Retry-After"] == "1"
    clock.now += 0.1
    limiter.check("a")


def test_idle_keys_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(5, clock=clock)
    for key in ("a", "b", "c"):
        limiter.check(key)
    clock.now += 61
    limiter.check("d")
    assert set(limiter._hits) == {"d"}
