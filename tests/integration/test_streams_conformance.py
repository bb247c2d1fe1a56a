"""Every stream of the registry against the real database: its tables, its rows, its rollups.

Parametrised over `STREAMS`, like tests/unit/test_streams.py: a new stream is checked here as
soon as it is registered, so a migration that forgot a table, a grant, a column or a key, or
a fold whose rows the upsert does not merge as the fold does, fails here.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

import asyncpg
import pytest

from services.aggregator.rebuild import rebuild_rollups
from services.aggregator.store import ApplyResult, Batch, apply_batch, check_time_zone
from services.streams import STREAMS, ConsumedEvent, Stream
from services.streams.rollups import Deltas, RollupTable
from tests.fixtures.streams import RECEIVED, SHANGHAI, samples

pytestmark = pytest.mark.integration
streams = pytest.mark.parametrize("stream", list(STREAMS.values()), ids=list(STREAMS))


async def _columns(db: asyncpg.Connection, table: str) -> set[str]:
    rows = await db.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1", table
    )
    return {r["column_name"] for r in rows}


async def _rollup_rows(db: asyncpg.Connection, table: RollupTable) -> dict[tuple[Any, ...], list[Any]]:
    keys = [name for name, _ in table.keys]
    values = [name for name, _ in table.values]
    rows = await db.fetch(f"SELECT {', '.join(keys + values)} FROM {table.name}")
    return {tuple(r[k] for k in keys): [r[v] for v in values] for r in rows}


def _consumed(stream: Stream[Any]) -> list[ConsumedEvent[Any]]:
    events = samples(stream, n=300)
    return [ConsumedEvent(e, RECEIVED, n % 4, n) for n, e in enumerate(events)]


def _folded(stream: Stream[Any], events: list[ConsumedEvent[Any]], zone: tzinfo) -> Deltas:
    deltas = Deltas()
    stream.fold(events, zone, deltas)
    return deltas


@streams
async def test_tables_exist_after_the_migrations_with_their_keys_and_grants(
    db: asyncpg.Connection, stream: Stream[Any]
) -> None:
    assert set(stream.raw.columns) <= await _columns(db, stream.raw.name)
    assert await db.fetchval(
        "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = $1", stream.raw.name
    )
    for table in stream.rollups:
        names = [name for name, _ in table.keys + table.values]
        assert set(names) <= await _columns(db, table.name), table.name
        # The upsert's ON CONFLICT needs a unique index on exactly the key columns.
        unique = await db.fetch(
            """SELECT array_agg(a.attname::text) AS cols FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
               WHERE i.indrelid = $1::regclass AND i.indisunique GROUP BY i.indexrelid""",
            table.name,
        )
        assert {name for name, _ in table.keys} in [set(r["cols"]) for r in unique], table.name
    for table in (stream.raw.name, *(t.name for t in stream.rollups)):
        # Dashboards read every raw and rollup table (migration 0003 and each stream's own).
        assert await db.fetchval("SELECT has_table_privilege('grafana_reader', $1, 'SELECT')", table), table


@streams
async def test_event_keys_take_the_streams_name(db: asyncpg.Connection, stream: Stream[Any]) -> None:
    async with db.transaction():
        await db.execute("INSERT INTO event_keys VALUES ($1, 'O1', 'e1')", stream.name)
        assert await db.fetchval("SELECT event_type FROM event_keys") == stream.name
        # A stream added later needs no change to event_keys (migration 0005), but the form is
        # still checked: the name is not free text.
        await db.execute("INSERT INTO event_keys VALUES ('a_later_stream_2', 'O1', 'e1')")
        with pytest.raises(asyncpg.CheckViolationError):
            async with db.transaction():
                await db.execute("INSERT INTO event_keys VALUES ($1, 'O1', 'e1')", stream.name.upper() + " x")


@streams
async def test_applied_events_are_stored_exactly_and_rebuild_reproduces_the_live_rollups(
    db: asyncpg.Connection, stream: Stream[Any]
) -> None:
    await check_time_zone(db, "Asia/Shanghai")
    events = _consumed(stream)
    resent = [ConsumedEvent(c.event, c.received_at, c.partition, c.offset + 1000) for c in events[:20]]
    result = await apply_batch(db, "g", "t", Batch(events + resent, {p: 2000 for p in range(4)}), SHANGHAI)
    assert result == ApplyResult({**dict.fromkeys(STREAMS, 0), stream.name: len(events)}, len(resent), 0)
    assert await db.fetchval("SELECT count(*) FROM event_keys WHERE event_type = $1", stream.name) == len(events)

    # Every stored row gives its event back, with its origin.
    raw = stream.raw
    rows = await db.fetch(f"SELECT {', '.join(raw.columns)} FROM {raw.name} ORDER BY kafka_offset")
    assert [raw.event_of_row(r) for r in rows] == [c.event for c in events]
    assert [(r["received_at"], r["kafka_partition"], r["kafka_offset"]) for r in rows] == [
        (c.received_at, c.partition, c.offset) for c in events
    ]

    # The rollups hold what the fold computed: the declared merge is the fold's.
    live = {table.name: await _rollup_rows(db, table) for table in stream.rollups}
    assert live == {t.name: _folded(stream, events, SHANGHAI).tables.get(t.name, {}) for t in stream.rollups}
    # A second batch merges into the stored rows as the fold would have folded both at once.
    later = [
        ConsumedEvent(c.event.model_copy(update={"event_id": f"{c.event.event_id}-b"}), RECEIVED, 0, 3000 + n)
        for n, c in enumerate(events[:50])
    ]
    await apply_batch(db, "g", "t", Batch(later, {p: 4000 for p in range(4)}), SHANGHAI)
    live = {table.name: await _rollup_rows(db, table) for table in stream.rollups}
    both = _folded(stream, events + later, SHANGHAI).tables
    assert live == {t.name: both.get(t.name, {}) for t in stream.rollups}

    assert await rebuild_rollups(db, "Asia/Shanghai") == len(events) + len(later)
    assert {table.name: await _rollup_rows(db, table) for table in stream.rollups} == live
