"""Rate limiting arithmetic, with a fake clock."""

from __future__ import annotations

import pytest

from services.collector.limits import RateLimiter, TokenBucket
from services.web.errors import TooManyRequestsError


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    bucket = TokenBucket(rate=10, capacity=100, tokens=100, updated=0)
    assert bucket.take(100, now=0) == 0
    assert bucket.take(10, now=0) == pytest.approx(1.0)
    assert bucket.take(10, now=1.0) == 0


def test_each_institution_has_its_own_bucket_and_gets_retry_after() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=100, burst=1000, clock=clock)
    limiter.check("H1", 1000)
    with pytest.raises(TooManyRequestsError) as refused:
        limiter.check("H1", 500)
    assert refused.value.status == 429
    assert refused.value.headers() == {"Retry-After": "5"}
    limiter.check("H2", 1000)  # another institution is not starved
    clock.now += 5
    limiter.check("H1", 500)


def test_a_batch_larger_than_the_burst_is_allowed_when_the_bucket_is_full() -> None:
    limiter = RateLimiter(rate=10, burst=100, clock=Clock())
    limiter.check("H1", 1000)
    with pytest.raises(TooManyRequestsError):
        limiter.check("H1", 1)
