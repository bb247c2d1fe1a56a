"""Per-institution rate limits (token buckets, by events).

One runaway hospital must not starve the others: each institution token has a bucket of
events that refills at a steady rate; the admin token (the platform's own relays) is not
limited here. Buckets live in this process's memory: with several collector processes
each enforces its own share. (The bound on concurrent ingest requests is kept by
`ingest_asgi.IngestEndpoint`.)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.web.errors import TooManyRequestsError


@dataclass
class TokenBucket:
    """`capacity` events at most, refilled at `rate` events per second."""

    rate: float
    capacity: float
    tokens: float
    updated: float

    def take(self, amount: int, now: float) -> float:
        """Take `amount` tokens; return 0 if granted, else the seconds until it would be."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if amount > self.capacity:
            # Bigger than a full bucket: allowed once the bucket is full, draining it.
            amount = int(self.capacity)
        if self.tokens >= amount:
            self.tokens -= amount
            return 0.0
        return (amount - self.tokens) / self.rate


class RateLimiter:
    """A token bucket per institution."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, org_code: str, events: int) -> None:
        """Raise TooManyRequestsError (429) if `org_code` is over its rate."""
        now = self._clock()
        bucket = self._buckets.get(org_code)
        if bucket is None:
            # Keyed by authenticated org_code only, so the dict is bounded by the institutions.
            bucket = self._buckets[org_code] = TokenBucket(self._rate, self._burst, self._burst, now)
        wait = bucket.take(events, now)
        if wait > 0:
            raise TooManyRequestsError(
                f"{org_code} is over its rate of {self._rate:g} events/s; retry later",
                retry_after_s=max(1, math.ceil(wait)),
            )
