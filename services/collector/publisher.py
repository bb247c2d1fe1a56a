"""Publish records to Kafka and return only once the broker has acknowledged all of them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.collector.errors import PublishUnavailableError
from services.collector.metrics import CollectorMetrics
from services.contract.envelope import OutgoingRecord

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 4 * 1024 * 1024


class KafkaPublisher:
    """Idempotent producer with acks=all; `publish` returns only after every ack."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        timeout_s: float,
        metrics: CollectorMetrics,
        linger_ms: int = 2,
        prepare: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._timeout_s = timeout_s
        self._metrics = metrics
        self._linger_ms = linger_ms
        self._prepare = prepare
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=self._linger_ms,
            max_batch_size=1024 * 1024,
            max_request_size=MAX_RECORD_BYTES,
            request_timeout_ms=int(self._timeout_s * 1000),
            client_id="health-telemetry-collector",
        )

    async def start(self) -> None:
        """Connect in the background, so the collector starts (and says unready) without Kafka."""
        self._connecting = asyncio.create_task(self._connect(), name="kafka-connect")

    async def _connect(self) -> None:
        delay = 0.5
        while True:
            producer = self._new_producer()
            try:
                if self._prepare is not None:
                    await self._prepare()
                await producer.start()
            except KafkaError as exc:
                await producer.stop()
                log.warning("kafka not reachable; retrying", extra={"error": repr(exc), "retry_in_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._producer = producer
            log.info("kafka producer connected", extra={"bootstrap": self._bootstrap})
            return

    async def stop(self) -> None:
        """Flush what was sent and close."""
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        if self._producer is not None:
            try:
                async with asyncio.timeout(self._timeout_s * 2):
                    await self._producer.stop()
            except TimeoutError:
                # Only records whose requests were answered 503 can still be pending here:
                # everything answered 202 was acknowledged already. Nothing acknowledged is lost.
                log.error("producer did not flush before shutdown; unacknowledged records dropped")

    async def ready(self) -> bool:
        """A real round trip to the broker: fetch the topic's metadata."""
        if self._producer is None:
            return False
        try:
            async with asyncio.timeout(2.0):
                # Fresh metadata from a live broker, not the producer's cached copy.
                cluster = await self._producer.client.fetch_all_metadata()
        except (KafkaError, TimeoutError):
            return False
        return bool(cluster.partitions_for_topic(self._topic))

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        """Send and wait for every ack, or raise PublishUnavailableError."""
        producer = self._producer
        if producer is None:
            self._metrics.publish_errors.labels(error_type="not_connected").inc()
            raise PublishUnavailableError("the event broker is not reachable", "not_connected")
        started = time.perf_counter()
        futures: list[asyncio.Future[object]] = []
        try:
            async with asyncio.timeout(self._timeout_s):
                for record in records:
                    futures.append(await producer.send(self._topic, record.value, key=record.key))
                await asyncio.gather(*futures)
        except TimeoutError as exc:
            # The producer may still deliver these later; the client's retry is deduplicated.
            for future in futures:
                future.add_done_callback(_consume_outcome)
            self._metrics.publish_errors.labels(error_type="timeout").inc()
            raise PublishUnavailableError("the event broker did not acknowledge in time", "timeout") from exc
        except KafkaError as exc:
            error_type = type(exc).__name__
            self._metrics.publish_errors.labels(error_type="kafka_error").inc()
            log.warning("publish failed", extra={"error_type": error_type, "error": repr(exc)})
            raise PublishUnavailableError("the event broker refused the events", "kafka_error") from exc
        finally:
            self._metrics.publish_duration.observe(time.perf_counter() - started)


def _consume_outcome(future: asyncio.Future[object]) -> None:
    # Read the late outcome so asyncio does not report it as never retrieved.
    if not future.cancelled():
        future.exception()
