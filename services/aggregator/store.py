"""Apply a consumed batch to TimescaleDB in one transaction: offsets guard, dedup, raw rows, rollups.

Written once for every stream of `services.streams.STREAMS`: each stream's events are looked
up in the key store (`event_keys`, one partition per month, docs/architecture.md "The key
store"), the new ones get their key in their month's partition, are copied into the stream's
raw table with its line function, and are folded by its fold into the rollup tables it
declares.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, tzinfo
from typing import Any, TypeAlias

from services.aggregator.errors import MonthArchivedError
from services.storage.connection import Connection
from services.storage.errors import TimeZoneMismatchError
from services.storage.keys import event_key
from services.storage.months import MonthState, ensure_months, key_partition
from services.streams import STREAMS, ConsumedEvent, Stream
from services.streams.copytext import timestamp_text
from services.streams.months import MonthOf
from services.streams.rollups import Deltas

# Events of one stream by (org_code, event_id).
Keyed: TypeAlias = "dict[tuple[str, str], ConsumedEvent[Any]]"


@dataclass(frozen=True)
class DeadRecord:
    """A dead letter of one event, as receipts find it (`dead_lettered_events`)."""

    partition: int
    stream: str
    org_code: str
    event_id: str
    reason: str
    detail: str


@dataclass
class Batch:
    """Valid events of a poll, the next offset to apply per partition after it, and the
    dead letters of its events (recorded in the same transaction, for receipts)."""

    events: list[ConsumedEvent[Any]] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)
    dead: list[DeadRecord] = field(default_factory=list)

    def split(self, lanes: int) -> list[Batch]:
        """Up to `lanes` batches of whole partitions, balanced by events, each applied on its own connection.

        Each keeps its partitions' events in order, their next offsets and their dead letters,
        so its transaction is guarded by the stored offsets of exactly its partitions. Every
        rollup key holds org_code and an institution's records are in one partition, so two
        lanes never write the same rollup or key row.
        """
        sizes = dict.fromkeys(self.next_offsets, 0)
        for c in self.events:
            sizes[c.partition] += 1
        if lanes <= 1 or len(sizes) <= 1:
            return [self]
        loads = [0] * min(lanes, len(sizes))
        lane_of: dict[int, int] = {}
        for partition, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
            lane = loads.index(min(loads))
            lane_of[partition] = lane
            loads[lane] += size
        parts = [Batch() for _ in loads]
        for partition, next_offset in self.next_offsets.items():
            parts[lane_of[partition]].next_offsets[partition] = next_offset
        for c in self.events:
            parts[lane_of[c.partition]].events.append(c)
        for d in self.dead:
            parts[lane_of.get(d.partition, 0)].dead.append(d)
        return parts


@dataclass(frozen=True)
class ApplyResult:
    """What a batch changed: new events per stream name, duplicates, stale (already applied) events."""

    inserted: Mapping[str, int] = field(default_factory=dict)
    duplicates: int = 0
    stale: int = 0

    def __add__(self, other: ApplyResult) -> ApplyResult:
        # Every stream is named in a sum, 0 included, as apply_batch names them.
        inserted = {name: self.inserted.get(name, 0) + other.inserted.get(name, 0) for name in STREAMS}
        return ApplyResult(inserted, self.duplicates + other.duplicates, self.stale + other.stale)


async def check_time_zone(conn: Connection, zone_name: str) -> None:
    """Record the platform zone on first start; refuse to mix rollups of two zones."""
    await conn.execute(
        "INSERT INTO rollup_settings (singleton, time_zone) VALUES (true, $1) ON CONFLICT DO NOTHING", zone_name
    )
    stored = await conn.fetchval("SELECT time_zone FROM rollup_settings")
    if stored != zone_name:
        raise TimeZoneMismatchError(
            f"rollups were built in {stored}; TELEMETRY_TIMEZONE is {zone_name}. Rebuild the rollups "
            "or set the zone back"
        )


async def stored_offsets(conn: Connection, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    """Next offset to apply per partition, as recorded with the rows (the source of truth)."""
    rows = await conn.fetch(
        """SELECT kafka_partition, next_offset FROM consumer_offsets
           WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = ANY($3::int[])""",
        group,
        topic,
        partitions,
    )
    return {r["kafka_partition"]: r["next_offset"] for r in rows}


async def reset_offset_beyond_log(
    conn: Connection, group: str, topic: str, partition: int, log_end: int, restart_at: int
) -> bool:
    """Set a stored offset that lies beyond the log's end to `restart_at`; False if it did not.

    Used when the log no longer holds the stored offset (see positions.py). Only a value past
    the log's end is replaced, and no owner can have stored one legitimately, so a batch
    applied meanwhile by whoever owns the partition now is never undone.
    """
    status = await conn.execute(
        """UPDATE consumer_offsets SET next_offset = $5, updated_at = now()
           WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = $3 AND next_offset > $4""",
        group,
        topic,
        partition,
        log_end,
        restart_at,
    )
    return status == "UPDATE 1"


async def _lock_offsets(conn: Connection, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    # Insert-then-lock so even a partition's first batch serialises with a zombie's.
    await conn.execute(
        """INSERT INTO consumer_offsets (consumer_group, topic, kafka_partition, next_offset)
           SELECT $1, $2, p, 0 FROM unnest($3::int[]) AS p ON CONFLICT DO NOTHING""",
        group,
        topic,
        partitions,
    )
    rows = await conn.fetch(
        """SELECT kafka_partition, next_offset FROM consumer_offsets
           WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = ANY($3::int[])
           ORDER BY kafka_partition FOR UPDATE""",
        group,
        topic,
        partitions,
    )
    return {r["kafka_partition"]: r["next_offset"] for r in rows}


def first_of_each_key(events: list[ConsumedEvent[Any]]) -> dict[str, Keyed]:
    """Per stream name (registry order), its events by (org_code, event_id), the first of each key kept, in order."""
    by_model: dict[type[Any], Keyed] = {}
    for consumed in events:
        ev = consumed.event
        keyed = by_model.get(type(ev))
        if keyed is None:
            keyed = by_model[type(ev)] = {}
        # setdefault keeps the first event of a key (a resubmission in the same batch).
        keyed.setdefault((ev.org_code, ev.event_id), consumed)
    # An event of a model no stream registered is a KeyError here, not silently dropped.
    found = {STREAMS.of(next(iter(keyed.values())).event).name: keyed for keyed in by_model.values()}
    return {name: found[name] for name in STREAMS if name in found}


@dataclass
class StreamWork:
    """One stream's part of a batch: the first event of each key, its key and its month, aligned."""

    stream: Stream[Any]
    events: list[ConsumedEvent[Any]]
    keys: list[str]
    months: list[date]

    def keep(self, wanted: list[bool]) -> None:
        """Keep only the entries whose flag in `wanted` is true."""
        kept = [i for i, keep in enumerate(wanted) if keep]
        self.events = [self.events[i] for i in kept]
        self.keys = [self.keys[i] for i in kept]
        self.months = [self.months[i] for i in kept]


def prepare(events: list[ConsumedEvent[Any]], zone: tzinfo) -> list[StreamWork]:
    """What a batch asks of the key store, per stream in registry order (pure: before the transaction)."""
    work = []
    month = MonthOf(zone)
    for name, keyed in first_of_each_key(events).items():
        moment = STREAMS[name].moment
        work.append(
            StreamWork(
                STREAMS[name],
                list(keyed.values()),
                [event_key(name, org, event_id) for org, event_id in keyed],
                [month(moment(c.event)) for c in keyed.values()],
            )
        )
    return work


async def _known_keys(conn: Connection, keys: list[str]) -> set[str]:
    """The keys already stored, in any month (one index probe per key and month partition)."""
    found = await conn.fetchval(
        "SELECT array_agg(encode(uuid_send(key), 'hex')) FROM event_keys WHERE key = ANY($1::uuid[])", keys
    )
    return set(found) if found else set()


async def _lock_months(conn: Connection, months: set[date]) -> None:
    # FOR SHARE: archive_month's UPDATE waits for this batch, or this batch sees it archived.
    rows = await conn.fetch(
        "SELECT month, state FROM months WHERE month = ANY($1::date[]) ORDER BY month FOR SHARE", sorted(months)
    )
    usable = {r["month"] for r in rows if r["state"] != MonthState.ARCHIVED}
    if usable != months:
        raise MonthArchivedError([f"{m:%Y-%m}" for m in sorted(months - usable)])


async def apply_batch(
    conn: Connection, group: str, topic: str, batch: Batch, zone: tzinfo, known_months: set[date] | None = None
) -> ApplyResult:
    """Apply `batch` exactly once, or not at all; the caller commits Kafka offsets afterwards.

    `known_months` (the caller's cache) holds the months whose key partition exists; the
    others are created first, each in a short transaction of its own. Raises
    MonthArchivedError, with nothing applied, if an event's month is archived.
    """
    partitions = sorted(batch.next_offsets)
    work = prepare(batch.events, zone)
    months = {m for w in work for m in w.months}
    missing = months if known_months is None else months - known_months
    if missing:
        states = await ensure_months(conn, missing)
        if known_months is not None:
            known_months.update(m for m, state in states.items() if state is not MonthState.ARCHIVED)
    async with conn.transaction():
        # Checked in every batch: a rebuild in another zone may have happened since start.
        stored_zone = await conn.fetchval("SELECT time_zone FROM rollup_settings FOR SHARE")
        if stored_zone is not None and stored_zone != str(zone):
            raise TimeZoneMismatchError(f"rollups are now in {stored_zone}; this aggregator folds in {zone}")
        applied_upto = await _lock_offsets(conn, group, topic, partitions)
        stale = sum(1 for c in batch.events if c.offset < applied_upto.get(c.partition, 0))
        if stale:  # a redelivery: only what is past the stored offsets is applied
            for w in work:
                w.keep([c.offset >= applied_upto.get(c.partition, 0) for c in w.events])
            months = {m for w in work for m in w.months}
        if months:
            await _lock_months(conn, months)
        deltas = Deltas()
        inserted = dict.fromkeys(STREAMS, 0)
        for w in work:
            known = await _known_keys(conn, w.keys) if w.keys else set()
            if known:
                w.keep([key not in known for key in w.keys])
                # A key repeated in the batch is one event; in the store, a resend of any month.
            if w.events:
                # Straight into the month's partition when there is one month (the usual batch):
                # routing each row through the partitioned table costs the backend CPU too.
                first = w.months[0]
                target = key_partition(first) if all(m is first or m == first for m in w.months) else "event_keys"
                await conn.copy_to_table(target, source=io.BytesIO(key_text(w)), columns=_KEY_COLUMNS)
                body = io.BytesIO(copy_text(w.stream, w.events))
                await conn.copy_to_table(
                    w.stream.raw.name, source=body, columns=list(w.stream.raw.columns), format="text"
                )
                w.stream.fold(w.events, zone, deltas)
            inserted[w.stream.name] = len(w.events)
        if batch.dead:
            await record_dead_letters(conn, batch.dead)
        await apply_deltas(conn, deltas)
        await conn.execute(
            """UPDATE consumer_offsets AS c SET next_offset = n.next_offset, updated_at = now()
               FROM unnest($3::int[], $4::bigint[]) AS n(kafka_partition, next_offset)
               WHERE c.consumer_group = $1 AND c.topic = $2 AND c.kafka_partition = n.kafka_partition
                 AND n.next_offset > c.next_offset""",
            group,
            topic,
            partitions,
            [batch.next_offsets[p] for p in partitions],
        )
    fresh = len(batch.events) - stale
    return ApplyResult(inserted, fresh - sum(inserted.values()), stale)


_KEY_COLUMNS = ["key", "month", "received_at"]


def key_text(work: StreamWork) -> bytes:
    """The `event_keys` rows of a stream's new events, as the body of a text COPY."""
    lines = []
    received, received_text = None, ""
    month, month_text = None, ""
    for c, key, m in zip(work.events, work.keys, work.months, strict=True):
        if c.received_at is not received:  # one record's events share one received_at
            received, received_text = c.received_at, timestamp_text(c.received_at)
        if m is not month:
            month, month_text = m, m.isoformat()
        lines.append(f"{key}\t{month_text}\t{received_text}\n")
    return "".join(lines).encode()


async def record_dead_letters(conn: Connection, dead: list[DeadRecord]) -> None:
    """Remember dead letters by their event's key, for receipts (the latest reason wins)."""
    await conn.execute(
        """INSERT INTO dead_lettered_events (key, stream, org_code, event_id, reason, detail)
           SELECT event_key(s, o, e), s, o, e, r, d
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS t(s, o, e, r, d)
           ON CONFLICT (key) DO UPDATE SET reason = excluded.reason, detail = excluded.detail,
               dead_lettered_at = excluded.dead_lettered_at""",
        [d.stream for d in dead],
        [d.org_code for d in dead],
        [d.event_id for d in dead],
        [d.reason for d in dead],
        [d.detail for d in dead],
    )


def copy_text(stream: Stream[Any], rows: list[ConsumedEvent[Any]]) -> bytes:
    """The rows as the body of a text-format COPY into the stream's raw table (see services.streams.copytext)."""
    line = stream.raw.line
    lines = []
    received, received_text = None, ""
    for c in rows:
        if c.received_at is not received:  # one record's events share one received_at
            received, received_text = c.received_at, timestamp_text(c.received_at)
        lines.append(line(c.event, received_text, c.partition, c.offset))
    return "".join(lines).encode()


async def apply_deltas(conn: Connection, deltas: Deltas) -> None:
    """Add the deltas to the rollup tables (inside the caller's transaction), in registry order."""
    for table in STREAMS.rollup_tables:
        rows = deltas.tables.get(table.name)
        if rows:
            await conn.execute(table.upsert_sql, *table.columns(rows))
