"""Apply a consumed batch to TimescaleDB in one transaction: offsets guard, dedup, raw rows, rollups.

Written once for every stream of `services.streams.STREAMS`: each stream's events get their
keys in `event_keys` (under the stream's name), are copied into the stream's raw table with
its line function, and are folded by its fold into the rollup tables it declares.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, TypeAlias

from services.storage.connection import Connection
from services.storage.errors import TimeZoneMismatchError
from services.streams import STREAMS, ConsumedEvent, Stream
from services.streams.copytext import timestamp_text
from services.streams.rollups import Deltas

# Events of one stream by (org_code, event_id).
Keyed: TypeAlias = "dict[tuple[str, str], ConsumedEvent[Any]]"


@dataclass
class Batch:
    """Valid events of a poll, and the next offset to apply per partition after it."""

    events: list[ConsumedEvent[Any]] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)


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


async def _new_keys(conn: Connection, stream_name: str, keyed: Keyed) -> list[ConsumedEvent[Any]]:
    """Insert the events' keys; return the events whose key was new."""
    if not keyed:
        return []
    orgs, ids = zip(*keyed, strict=True)
    # The keys come back as two arrays, not a row each: asyncpg builds a Record per row and
    # reading them was ~4 µs per event. When every key was new (the usual case) the count
    # alone says so and the events are kept as they are.
    row = await conn.fetchrow(
        """WITH inserted AS (
               INSERT INTO event_keys (event_type, org_code, event_id)
               SELECT $1, o, e FROM unnest($2::text[], $3::text[]) AS t(o, e)
               ON CONFLICT DO NOTHING RETURNING org_code, event_id)
           SELECT count(*) AS n, array_agg(org_code) AS orgs, array_agg(event_id) AS ids FROM inserted""",
        stream_name,
        orgs,
        ids,
    )
    assert row is not None
    if row["n"] == len(keyed):
        return list(keyed.values())
    if row["n"] == 0:
        return []
    new = set(zip(row["orgs"], row["ids"], strict=True))
    return [consumed for key, consumed in keyed.items() if key in new]


async def apply_batch(conn: Connection, group: str, topic: str, batch: Batch, zone: tzinfo) -> ApplyResult:
    """Apply `batch` exactly once, or not at all; the caller commits Kafka offsets afterwards."""
    partitions = sorted(batch.next_offsets)
    async with conn.transaction():
        # Checked in every batch: a rebuild in another zone may have happened since start.
        stored_zone = await conn.fetchval("SELECT time_zone FROM rollup_settings FOR SHARE")
        if stored_zone is not None and stored_zone != str(zone):
            raise TimeZoneMismatchError(f"rollups are now in {stored_zone}; this aggregator folds in {zone}")
        applied_upto = await _lock_offsets(conn, group, topic, partitions)
        fresh = [c for c in batch.events if c.offset >= applied_upto.get(c.partition, 0)]
        stale = len(batch.events) - len(fresh)
        deltas = Deltas()
        inserted = dict.fromkeys(STREAMS, 0)
        for name, keyed in first_of_each_key(fresh).items():
            stream = STREAMS[name]
            new = await _new_keys(conn, name, keyed)
            if new:
                body = io.BytesIO(copy_text(stream, new))
                await conn.copy_to_table(stream.raw.name, source=body, columns=list(stream.raw.columns), format="text")
                stream.fold(new, zone, deltas)
            inserted[name] = len(new)
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
    return ApplyResult(inserted, len(fresh) - sum(inserted.values()), stale)


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
