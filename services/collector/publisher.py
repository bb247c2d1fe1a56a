"""Publish records to Kafka and return only once the broker has acknowledged all of them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)

from services.collector.errors import PublishUnavailableError
from services.collector.metrics import CollectorMetrics
from services.collector.spool import AsyncSpool, SpoolFullError
from services.contract.envelope import OutgoingRecord

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 4 * 1024 * 1024

# Errors after which an idempotent producer never delivers again: its producer id and
# sequence numbers no longer agree with the broker's (aiokafka keeps failing every later
# send with the same error). Only a new producer, with a new producer id, recovers.
_FATAL_PRODUCER_ERRORS = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced)


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
        probe_s: float = 5.0,
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._timeout_s = timeout_s
        self._metrics = metrics
        self._linger_ms = linger_ms
        self._prepare = prepare
        self._probe_s = probe_s
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._probing: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

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
        self._metrics.kafka_up.set(0)
        self._connecting = asyncio.create_task(self._connect(), name="kafka-connect")
        self._probing = asyncio.create_task(self._probe(), name="kafka-probe")

    async def _probe(self) -> None:
        # collector_kafka_up must change while no client asks /readyz and no event
        # arrives: an outage at night is seen before the morning's first upload.
        while True:
            await self.ready()
            await asyncio.sleep(self._probe_s)

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
            except asyncio.CancelledError:
                # Stopped while still connecting: close the half-opened producer, or its
                # connections leak (and aiokafka warns when it is garbage-collected).
                await producer.stop()
                raise
            self._producer = producer
            log.info("kafka producer connected", extra={"bootstrap": self._bootstrap})
            return

    def _sender_alive(self, producer: AIOKafkaProducer) -> bool:
        # aiokafka's sender task ends for good on a fatal error; sends made after that wait
        # for ever. (A private attribute: aiokafka is pinned, and a test covers this.)
        task = getattr(getattr(producer, "_sender", None), "sender_task", None)
        return task is None or not task.done()

    def _replace_producer(self, producer: AIOKafkaProducer, reason: str) -> None:
        """Retire a producer that can no longer deliver and connect a new one (a new producer id)."""
        if self._producer is not producer:
            return  # another request already replaced it
        self._producer = None
        self._metrics.kafka_up.set(0)
        self._metrics.producer_resets.labels(reason=reason).inc()
        log.error("kafka producer cannot deliver any more; replacing it", extra={"reason": reason})
        retiring = asyncio.create_task(self._retire(producer), name="kafka-producer-retire")
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.create_task(self._connect(), name="kafka-connect")

    async def _retire(self, producer: AIOKafkaProducer) -> None:
        # Its undelivered records belong to requests already answered from the spool or
        # with 503: nothing acknowledged depends on it.
        try:
            async with asyncio.timeout(self._timeout_s):
                await producer.stop()
        except (TimeoutError, KafkaError) as exc:
            log.warning("retired kafka producer did not stop cleanly", extra={"error": repr(exc)})

    async def stop(self) -> None:
        """Flush what was sent and close."""
        for task in (self._probing, self._connecting, *self._retiring):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._producer is not None:
            try:
                async with asyncio.timeout(self._timeout_s * 2):
                    await self._producer.stop()
            except TimeoutError:
                # Only records whose requests were answered 503 can still be pending here:
                # everything answered 202 was acknowledged already. Nothing acknowledged is lost.
                log.error("producer did not flush before shutdown; unacknowledged records dropped")

    async def ready(self) -> bool:
        """A real round trip to the broker: fetch the topic's metadata (also sets collector_kafka_up)."""
        up = await self._round_trip()
        self._metrics.kafka_up.set(1 if up else 0)
        return up

    async def _round_trip(self) -> bool:
        producer = self._producer
        if producer is None:
            return False
        if not self._sender_alive(producer):
            # The broker may answer metadata, but this producer will never deliver again.
            self._replace_producer(producer, "sender_stopped")
            return False
        try:
            async with asyncio.timeout(2.0):
                # Fresh metadata from a live broker, not the producer's cached copy.
                cluster = await producer.client.fetch_all_metadata()
        except (KafkaError, TimeoutError):
            return False
        return bool(cluster.partitions_for_topic(self._topic))

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        """Send and wait for every ack, or raise PublishUnavailableError."""
        producer = self._producer
        if producer is None:
            self._metrics.publish_errors.labels(error_type="not_connected").inc()
            raise PublishUnavailableError("the event broker is not reachable", "not_connected")
        if not self._sender_alive(producer):
            self._replace_producer(producer, "sender_stopped")
            self._metrics.publish_errors.labels(error_type="not_connected").inc()
            raise PublishUnavailableError("the event broker is not reachable", "not_connected")
        started = time.perf_counter()
        futures: list[asyncio.Future[object]] = []
        try:
            async with asyncio.timeout(self._timeout_s):
                for record in records:
                    futures.append(await producer.send(self._topic, record.value, key=record.key))
                # Most requests are one record (one institution): no gathering future for it.
                if len(futures) == 1:
                    await futures[0]
                else:
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
            if isinstance(exc, _FATAL_PRODUCER_ERRORS):
                self._replace_producer(producer, "fatal_error")
            raise PublishUnavailableError("the event broker refused the events", "kafka_error") from exc
        finally:
            self._metrics.publish_duration.observe(time.perf_counter() - started)


def _consume_outcome(future: asyncio.Future[object]) -> None:
    # Read the late outcome so asyncio does not report it as never retrieved.
    if not future.cancelled():
        future.exception()


class DurablePublisher:
    """Kafka first; while Kafka cannot take records, the fsync'ed spool; forward the spool in order.

    `publish` returns only once the records are acknowledged by the broker or fsync'ed in
    the spool; it raises PublishUnavailableError only when both are impossible (spool full).
    While the spool holds anything, requests go behind it (an institution's events stay in
    order, and no request waits out a send timeout during an outage) until the forwarder has
    delivered it; with the spool empty, every request tries Kafka first.
    """

    def __init__(
        self,
        kafka: KafkaPublisher,
        spool: AsyncSpool,
        metrics: CollectorMetrics,
        forward_records: int = 200,
        restart_delay_s: float = 1.0,
    ) -> None:
        self.kafka = kafka
        self._spool = spool
        self._metrics = metrics
        self._forward_records = forward_records
        self._restart_delay_s = restart_delay_s
        self._wake = asyncio.Event()
        self._forwarder: asyncio.Task[None] | None = None
        self._forwarding = False
        self._spool_refused = False
        metrics.spool_bytes.set_function(lambda: spool.spool.pending_bytes)
        metrics.spool_events.set_function(lambda: spool.spool.pending_events)
        metrics.spool_oldest_age.set_function(self._oldest_age)

    def _oldest_age(self) -> float:
        oldest = self._spool.spool.oldest_at
        return 0.0 if oldest is None else max(time.time() - oldest, 0.0)

    async def start(self) -> None:
        """Connect to Kafka and start forwarding what an earlier run left in the spool."""
        await self.kafka.start()
        self._forwarder = asyncio.create_task(self._supervise_forwarder(), name="spool-forwarder")

    async def stop(self) -> None:
        """Stop forwarding (the spool keeps what is left) and close Kafka."""
        if self._forwarder is not None:
            self._forwarder.cancel()
            await asyncio.gather(self._forwarder, return_exceptions=True)
        await self.kafka.stop()
        self._spool.spool.close()

    @property
    def forwarder_running(self) -> bool:
        """Whether the spool forwarder is running (not waiting to be restarted after a failure)."""
        return self._forwarding

    @property
    def spool_has_room(self) -> bool:
        """False from a request the spool refused (full) until the forwarder has freed some of it."""
        return self._spool.spool.empty or not self._spool_refused

    @property
    def spooling(self) -> bool:
        """Whether requests currently go to the spool (it holds records not yet forwarded)."""
        return not self._spool.spool.empty

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        """Durable in Kafka or in the spool when this returns."""
        if self._spool.spool.empty:
            try:
                await self.kafka.publish(records)
                return
            except PublishUnavailableError as exc:
                log.warning("kafka unavailable; spooling", extra={"error_type": exc.error_type})
        try:
            await self._spool.append(records)
        except SpoolFullError as exc:
            self._spool_refused = True
            self._metrics.publish_errors.labels(error_type="spool_full").inc()
            raise PublishUnavailableError(
                "the event broker is unreachable and the local spool is full", "spool_full"
            ) from exc
        self._metrics.spooled_events.inc(sum(r.events for r in records))
        self._wake.set()

    async def _supervise_forwarder(self) -> None:
        # The spool is drained only by this loop: if it died, acknowledged events would wait
        # on disk for ever while every request went on to the spool. Any failure restarts it
        # (counted, logged with its traceback); /readyz says so while it waits to restart.
        while True:
            self._forwarding = True
            try:
                await self._forward()
            except Exception:
                self._forwarding = False
                self._metrics.forwarder_restarts.inc()
                log.exception("spool forwarder failed; restarting", extra={"restart_in_s": self._restart_delay_s})
                await asyncio.sleep(self._restart_delay_s)

    async def _forward(self) -> None:
        delay = 0.2
        while True:
            delay = await self._forward_once(delay)

    async def _forward_once(self, delay: float) -> float:
        """Forward one batch of the spool; return the back-off for the next attempt."""
        if self._spool.spool.empty:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), 1.0)
            except TimeoutError:
                return delay
        batch = await self._spool.read_batch(self._forward_records)
        if batch.records:
            try:
                await self.kafka.publish(batch.records)
            except PublishUnavailableError:
                await asyncio.sleep(delay)
                return min(delay * 2, 5.0)
        elif batch.position == self._spool.spool.cursor:
            await asyncio.sleep(0.05)
            return delay
        # (A batch without records but with a new position stepped over unreadable bytes.)
        await self._spool.advance(batch)
        self._spool_refused = False
        self._metrics.forwarded_events.inc(sum(r.events for r in batch.records))
        if self._spool.spool.empty:
            log.info("spool drained; publishing directly again")
        return 0.2
