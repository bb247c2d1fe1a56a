"""The consume loop: poll a batch, dead-letter what cannot be read, apply the rest, then commit.

The database holds the next offset to apply per partition (written in the batch's own
transaction); on assignment the consumer seeks there, and a batch whose offsets were already
applied (a redelivery, or a consumer that lost its partitions while paused) is skipped. A
partition with no stored offset is read from the log's start, and one whose stored offset the
log no longer holds is read again from its start (positions.py).
Kafka's committed offsets are kept in step for lag monitoring only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from datetime import date
from zoneinfo import ZoneInfo

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError

from services.aggregator.deadletters import dead_letter_value
from services.aggregator.decoding import DeadLetter, dead_records, decode_into, refuse_archived, unstorable
from services.aggregator.errors import MonthArchivedError
from services.aggregator.intake import Intake, earliest_offsets
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.positions import OutOfRangeReason, recover_position
from services.aggregator.settings import AggregatorSettings
from services.aggregator.store import (
    ApplyResult,
    Batch,
    apply_batch,
    record_dead_letters,
    reset_offset_beyond_log,
    stored_offsets,
)
from services.storage.live import LiveValue
from services.streams.months import ArchivedMonths

log = logging.getLogger(__name__)

# Records decoded between two yields to the event loop (~30 events each in practice).
_RECORDS_PER_YIELD = 20


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, continue from the offsets stored with the rows, not Kafka's."""

    def __init__(self, consumer: EventConsumer) -> None:
        self._owner = consumer

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._owner.forget_partitions({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self._owner.seek_to_stored(list(assigned))


class EventConsumer:
    """Consumes the events topic into the database."""

    def __init__(
        self,
        settings: AggregatorSettings,
        pool: asyncpg.Pool,
        metrics: AggregatorMetrics,
        archived: LiveValue[ArchivedMonths] | None = None,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._metrics = metrics
        self._zone = ZoneInfo(settings.timezone)
        # The archived months (reloaded on NOTIFY): their events are dead letters, not applied.
        self._archived = archived
        # Months whose key partition exists (created on a month's first event).
        self._known_months: set[date] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._stopping = asyncio.Event()
        self.batches_applied = 0
        # Dead letters sent for records not applied yet, as (partition, offset, n-th of the
        # record): a batch retried after a database or broker error decodes to the same dead
        # letters, which must not be sent (and counted) again. Emptied as batches commit.
        self._dead_sent: set[tuple[int, int, int]] = set()

    async def seek_to_stored(self, assigned: list[TopicPartition]) -> None:
        """Seek newly assigned partitions to the next offset recorded in the database.

        The client sets the assignment before it calls us and fetches meanwhile, so the
        partitions are paused first (before any await) and resumed only once they point where
        the database says: records fetched from any other position are never handed out.
        """
        consumer = self._consumer
        if consumer is None or not assigned:
            return
        consumer.pause(*assigned)
        stored = await self._stored_offsets_patiently([tp.partition for tp in assigned])
        if stored is None:  # stopping: the partitions stay paused until the consumer is closed
            return
        fresh = []
        for tp in assigned:
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])
            else:
                fresh.append(tp)
        if fresh:
            # Nothing applied from these partitions into this database: start at the log's
            # beginning, not at Kafka's committed offset (which may belong to another database).
            await consumer.seek_to_beginning(*fresh)
        consumer.resume(*[tp for tp in assigned if tp in consumer.assignment()])
        log.info("partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)})

    async def _stored_offsets_patiently(self, partitions: list[int]) -> dict[int, int] | None:
        """The stored offsets, retried while the database is away (None once stopping)."""
        delay = 0.5
        while not self._stopping.is_set():
            try:
                s = self._settings
                async with self._pool.acquire() as conn:
                    return await stored_offsets(conn, s.consumer_group, s.events_topic, partitions)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # Reading from any other position could skip or repeat records: wait.
                log.warning("stored offsets not readable; retrying", extra={"error": repr(exc), "retry_in_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        return None

    async def run(self) -> None:
        """Consume until `stop()`; Kafka or database outages are waited out, never fatal.

        A Kafka client can also fail for good: aiokafka's group coordination ends on an error
        of its own when it writes to a connection a dying broker closed, and every later poll
        raises it again. Such clients are replaced. Nothing is lost or applied twice: the
        positions come from the database, so new clients resume where the batches committed.
        """
        delay = 1.0
        while not self._stopping.is_set():
            try:
                await self._consume()
            except KafkaError as exc:
                self._metrics.kafka_client_restarts.inc()
                log.error("kafka clients failed; replacing them", exc_info=exc, extra={"retry_in_s": delay})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, 30.0)

    async def _consume(self) -> None:
        """Consume with one pair of Kafka clients until `stop()` or until a client fails for good."""
        s = self._settings
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            group_id=s.consumer_group,
            enable_auto_commit=False,
            # Never let the client jump on its own: an out-of-range position is handled by
            # _recover_positions, which knows what the stored offsets mean.
            auto_offset_reset="none",
            # A topic deleted and created again is seen at the next metadata refresh; the
            # client's default (5 min) would leave the new log unread that long.
            metadata_max_age_ms=10_000,
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            client_id="health-telemetry-aggregator",
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            max_request_size=8 * 1024 * 1024,
            client_id="health-telemetry-dead-letters",
        )
        await self._start_clients()
        self._consumer.subscribe([s.events_topic], listener=_SeekToStored(self))
        # Two batches in flight: while one is applied (mostly waiting on PostgreSQL), the next
        # is polled and decoded. Batches are still applied one at a time and in poll order, and a
        # batch is applied only after the one before it was: if that one failed (and was rewound),
        # the batch read after it is dropped and rewound too, so no offset is ever skipped.
        applying: tuple[Intake, asyncio.Task[bool]] | None = None
        try:
            while not self._stopping.is_set():
                try:
                    polled = await self._consumer.getmany(timeout_ms=s.poll_timeout_ms, max_records=s.max_batch_records)
                except OffsetOutOfRangeError as exc:
                    try:
                        await self._recover_positions(exc.args[0])
                    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError) as again:
                        # The position stays out of range, so the next poll raises again and retries.
                        log.warning("offset recovery failed; will retry", extra={"error": repr(again)})
                        await asyncio.sleep(1.0)
                    continue
                except NoOffsetForPartitionError as exc:
                    await self._consumer.seek_to_beginning(*exc.args)
                    continue
                intake = await self._take(polled) if polled else None
                if applying is not None:
                    before, task = applying
                    applying = None
                    if not await task and intake is not None:
                        self._rewind_after_failure(before, intake)
                        intake = None
                if intake is not None:
                    applying = (intake, asyncio.create_task(self._apply(intake), name="apply-batch"))
            if applying is not None:
                await applying[1]
        finally:
            if applying is not None and not applying[1].done():
                applying[1].cancel()
                await asyncio.gather(applying[1], return_exceptions=True)
            # Bounded: with the broker gone, leaving the group cannot complete. The offsets that
            # matter are already in the database.
            for client in (self._consumer, self._producer):
                try:
                    async with asyncio.timeout(10):
                        await client.stop()
                except TimeoutError:
                    log.error("kafka client did not stop in time", extra={"client": type(client).__name__})

    async def _start_clients(self) -> None:
        assert self._consumer is not None and self._producer is not None
        delay = 0.5
        while not self._stopping.is_set():
            try:
                await self._producer.start()
                await self._consumer.start()
                return
            except KafkaError as exc:
                log.warning("kafka not reachable; retrying", extra={"error": repr(exc), "retry_in_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _recover_positions(self, fetch_offsets: dict[TopicPartition, int]) -> None:
        """Read partitions whose stored offset the log no longer holds from the log's start."""
        consumer = self._consumer
        assert consumer is not None
        owned = [tp for tp in fetch_offsets if self._owns(tp)]
        if not owned:
            return
        starts = await consumer.beginning_offsets(owned)
        ends = await consumer.end_offsets(owned)
        s = self._settings
        async with self._pool.acquire() as conn:
            for tp in owned:
                recovery = recover_position(fetch_offsets[tp], starts[tp], ends[tp])
                if recovery.reason is OutOfRangeReason.AHEAD_OF_LOG:
                    self.forget_partitions({tp.partition})
                    # Otherwise the new log's records, below the stored offset, would be
                    # dropped as already applied. (Behind the log's start, the next batch
                    # moves the stored offset forward as usual.)
                    await reset_offset_beyond_log(
                        conn, s.consumer_group, s.events_topic, tp.partition, ends[tp], recovery.next_offset
                    )
                if recovery.reason is not OutOfRangeReason.TRANSIENT:
                    self._metrics.offset_resets.labels(reason=recovery.reason.value).inc()
                    log.error(
                        "stored offset not in the broker's log; reading the partition from its start",
                        extra={
                            "partition": tp.partition,
                            "stored_offset": fetch_offsets[tp],
                            "log_start": starts[tp],
                            "log_end": ends[tp],
                            "reason": recovery.reason.value,
                            "next_offset": recovery.next_offset,
                        },
                    )
                consumer.seek(tp, recovery.next_offset)

    def stop(self) -> None:
        """Finish the batch in hand, then leave the group."""
        self._stopping.set()

    async def _take(self, polled: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> Intake | None:
        """Decode a poll into a batch of at most max_batch_events; seek back the records not taken."""
        assert self._consumer is not None
        intake = Intake({}, Batch(), [])
        batch = intake.batch
        # A poll may bring hundreds of records of up to 1,000 events each: apply at most
        # max_batch_events per transaction (bounded memory and time to visible) and seek
        # the rest back, to be polled again.
        since_yield = 0
        for tp, records in polled.items():
            taken = 0
            archived = self._archived.value if self._archived is not None else None
            for record in records:
                if len(batch.events) >= self._settings.max_batch_events and (taken or intake.records):
                    break
                start = len(batch.events)
                decode_into(record, batch.events, intake.dead)
                if archived is not None and archived.months and len(batch.events) > start:
                    refuse_archived(record, batch.events, start, intake.dead, archived)
                taken += 1
                since_yield += 1
                if since_yield == _RECORDS_PER_YIELD:
                    # Let the batch being applied send its next statement meanwhile.
                    since_yield = 0
                    await asyncio.sleep(0)
            if taken:
                intake.records[tp] = records[:taken]
                batch.next_offsets[tp.partition] = records[taken - 1].offset + 1
            if taken < len(records) and self._owns(tp):
                self._consumer.seek(tp, records[taken].offset)
        return intake if intake.records else None

    async def _apply(self, intake: Intake) -> bool:
        """Dead-letter, apply and commit one batch; False if it was rewound to be retried."""
        batch, polled = intake.batch, intake.records
        if intake.dead:
            try:
                await self._send_dead_letters(intake.dead)
            except KafkaError as exc:
                log.warning("dead letters not sent; will retry the batch", extra={"error": repr(exc)})
                self._rewind(polled)
                await asyncio.sleep(1.0)
                return False
        batch.dead = dead_records(intake.dead)
        started = time.perf_counter()
        try:
            try:
                result = await self._apply_in_lanes(batch)
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                # The data itself cannot be stored: retrying the batch would stall every
                # partition in it for ever. Apply event by event and dead-letter the ones that fail.
                log.error("batch holds events the database refuses; isolating them", extra={"error": repr(exc)})
                result = await self._apply_isolating(batch, polled)
        except MonthArchivedError as exc:
            # Archived since the events were checked: take the batch again with the archived
            # months reloaded, which turns those events into dead letters.
            log.info("months archived while a batch was in hand; taking it again", extra={"months": exc.months})
            self._known_months.difference_update(_month_dates(exc.months))
            if self._archived is not None:
                try:
                    await self._archived.reload()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as again:
                    # The batch comes again either way; the next reload (NOTIFY, timer) catches up.
                    log.warning("archived months not reloaded", extra={"error": repr(again)})
                    await asyncio.sleep(1.0)
            self._rewind(polled)
            return False
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Nothing of the failing transaction was applied (another lane's may have been, and
            # its records are stale when they come again): rewind and try again after a pause,
            # still polling so the group does not think we died.
            self._metrics.db_errors.labels(error_type=type(exc).__name__).inc()
            log.warning("batch not applied; will retry", extra={"error": repr(exc)})
            self._rewind(polled)
            await asyncio.sleep(1.0)
            return False
        self._metrics.db_write_duration.observe(time.perf_counter() - started)
        self._metrics.batch_events.observe(len(batch.events))
        for stream_name, inserted in result.inserted.items():
            self._metrics.events_applied.labels(event_type=stream_name).inc(inserted)
        self._metrics.events_duplicate.inc(result.duplicates)
        self._metrics.records_stale.inc(result.stale)
        self.batches_applied += 1
        self._forget_dead_letters(batch.next_offsets)
        await self._commit(polled)
        return True

    async def _apply_in_lanes(self, batch: Batch) -> ApplyResult:
        """Apply the batch as up to `apply_connections` transactions of whole partitions, at once.

        While PostgreSQL works on one lane's statements this process prepares the next
        lane's, so both cores work instead of taking turns. A lane that fails leaves the
        others committed; the caller rewinds every partition of the batch, and the stored
        offsets make the committed lanes' records stale when they come again.
        """
        group, topic = self._settings.consumer_group, self._settings.events_topic

        async def lane(part: Batch) -> ApplyResult:
            async with self._pool.acquire() as conn:
                return await apply_batch(conn, group, topic, part, self._zone, self._known_months)

        parts = batch.split(self._settings.apply_connections)
        if len(parts) == 1:
            return await lane(parts[0])
        outcomes = await asyncio.gather(*(lane(part) for part in parts), return_exceptions=True)
        total = ApplyResult()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            total = total + outcome
        return total

    def _rewind_after_failure(self, failed: Intake, read_after: Intake) -> None:
        """Drop the batch read after a failed one: every partition goes back to its earliest record of the two.

        The failed batch was rewound already, but the later batch's poll may have moved past
        that seek (or re-read from it), and partitions only in the later batch moved too.
        """
        assert self._consumer is not None
        for tp, offset in earliest_offsets(failed.records, read_after.records).items():
            if self._owns(tp):
                self._consumer.seek(tp, offset)

    async def _apply_isolating(
        self, batch: Batch, polled: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> ApplyResult:
        """Apply each event in its own transaction, dead-letter those refused, then store the offsets.

        Without the offsets guard per event, a crash here re-applies events on redelivery;
        the event keys still count each once.
        """
        group, topic = self._settings.consumer_group, self._settings.events_topic
        async with self._pool.acquire() as conn:
            applied_upto = await stored_offsets(conn, group, topic, sorted(batch.next_offsets))
            totals = ApplyResult()
            records = {(r.partition, r.offset): r for rs in polled.values() for r in rs}
            for consumed in batch.events:
                if consumed.offset < applied_upto.get(consumed.partition, 0):
                    totals = totals + ApplyResult(stale=1)
                    continue
                try:
                    one = await apply_batch(conn, group, topic, Batch([consumed], {}), self._zone, self._known_months)
                except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                    error, raw = unstorable(consumed, exc)
                    dead = [(records[(consumed.partition, consumed.offset)], error, raw)]
                    await self._send_dead_letters(dead)
                    await record_dead_letters(conn, dead_records(dead))
                    continue
                totals = totals + one
            await apply_batch(conn, group, topic, Batch([], batch.next_offsets, batch.dead), self._zone)
        return totals

    def _owns(self, tp: TopicPartition) -> bool:
        # After a rebalance during a batch the partition may be someone else's: seeking,
        # committing or reading its high-water mark would raise and end the consumer.
        assert self._consumer is not None
        return tp in self._consumer.assignment()

    def _rewind(self, polled: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        assert self._consumer is not None
        for tp, records in polled.items():
            if self._owns(tp):
                self._consumer.seek(tp, records[0].offset)
        # While batches keep failing the lag must still move, or "consumer lag growing"
        # could not see a consumer that polls but never applies.
        self._record_lag({tp: records[0].offset for tp, records in polled.items()})

    def _record_lag(self, next_offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        for tp, next_offset in next_offsets.items():
            if not self._owns(tp):
                continue
            end = self._consumer.highwater(tp)
            if end is not None:
                self._metrics.consumer_lag.labels(partition=str(tp.partition)).set(max(end - next_offset, 0))

    async def _send_dead_letters(self, dead: list[DeadLetter]) -> None:
        """Send the dead letters not sent before; raise the first send error after recording the rest."""
        assert self._producer is not None
        futures = []
        sending: list[tuple[tuple[int, int, int], str]] = []
        nth: dict[tuple[int, int], int] = {}
        for record, error, raw in dead:
            n = nth[record.partition, record.offset] = nth.get((record.partition, record.offset), -1) + 1
            key = (record.partition, record.offset, n)
            if key in self._dead_sent:
                continue
            value = dead_letter_value(
                error.reason,
                error.event_type,
                error.detail,
                {"topic": record.topic, "partition": record.partition, "offset": record.offset},
                raw,
                record.value,
            )
            futures.append(await self._producer.send(self._settings.dead_letter_topic, value, key=record.key))
            sending.append((key, error.reason))
            log.warning(
                "dead letter",
                extra={"reason": error.reason, "partition": record.partition, "offset": record.offset},
            )
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        for (key, reason), outcome in zip(sending, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                self._dead_sent.add(key)
                self._metrics.dead_letters.labels(reason=reason).inc()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def forget_partitions(self, partitions: set[int]) -> None:
        """Forget the dead letters sent for partitions this consumer no longer reads.

        Whoever reads them next sends its own (at least once); and after a topic is recreated,
        the same partition and offset name a different record.
        """
        self._dead_sent = {key for key in self._dead_sent if key[0] not in partitions}

    def _forget_dead_letters(self, next_offsets: dict[int, int]) -> None:
        """Drop the memory of dead letters whose records are now applied (never read again)."""
        self._dead_sent = {
            (partition, offset, n)
            for partition, offset, n in self._dead_sent
            if partition not in next_offsets or offset >= next_offsets[partition]
        }

    async def _commit(self, polled: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        assert self._consumer is not None
        offsets = {tp: records[-1].offset + 1 for tp, records in polled.items() if self._owns(tp)}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # Harmless: the database already holds these offsets and the next owner seeks there.
            log.info("kafka commit skipped", extra={"error": repr(exc)})
        self._record_lag(offsets)


def _month_dates(months: list[str]) -> set[date]:
    """`YYYY-MM` strings back to month starts."""
    return {date(int(m[:4]), int(m[5:7]), 1) for m in months}
