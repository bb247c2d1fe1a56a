"""One ingest request's work once its caller is known: checks, durability, metrics.

Framework-free, so the documented FastAPI routes and the lean ASGI path (`ingest_asgi`) run
exactly the same steps in the same order, and answer the same errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from services.collector.errors import PublishUnavailableError
from services.collector.ingest import authorize, parse_events, validate_events
from services.collector.limits import RateLimiter
from services.collector.metrics import CollectorMetrics
from services.collector.publisher import DurablePublisher
from services.contract.envelope import encode_records
from services.storage.live import LiveValue
from services.storage.reference import ReferenceSnapshot
from services.streams import STREAMS, Stream
from services.web.auth import Principal
from services.web.errors import ApiError, UnavailableError


class Intake:
    """Accepts the events of one body for an authenticated caller, or raises the ApiError to answer."""

    def __init__(
        self,
        metrics: CollectorMetrics,
        publisher: DurablePublisher,
        reference: LiveValue[ReferenceSnapshot],
        rate_limiter: RateLimiter,
        retry_after_s: int,
    ) -> None:
        self._metrics = metrics
        self._publisher = publisher
        self._reference = reference
        self._rate_limiter = rate_limiter
        self._retry_after_s = retry_after_s
        # Bound once: `labels()` looks the child up in a locked dict on every call.
        self._accepted = {name: metrics.events_accepted.labels(name) for name in STREAMS}

    async def accept(self, stream: Stream[Any], principal: Principal, read_body: Callable[[], Awaitable[bytes]]) -> int:
        """Durable (Kafka acks=all, or the fsync'ed spool) when this returns the number of events.

        The body is read here, after authentication, so its refusals (413, 415) count as
        rejected events like every other refusal of the request.
        """
        try:
            raw_events = parse_events(await read_body())
            authorize(principal, raw_events)
            if principal.org_code is not None:
                self._rate_limiter.check(principal.org_code, len(raw_events))
            accepted = validate_events(stream, raw_events, self._reference.value)
            records = encode_records(stream.name, raw_events, datetime.now(UTC))
            try:
                await self._publisher.publish(records)
            except PublishUnavailableError as exc:
                raise UnavailableError(f"{exc}; retry later with the same event_ids", self._retry_after_s) from exc
        except ApiError as exc:
            self._metrics.events_rejected.labels(stream.name, exc.code).inc()
            raise
        self._accepted[stream.name].inc(accepted)
        return accepted
