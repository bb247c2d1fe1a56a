"""Rebuild every rollup from the raw events, through the same folds as the live path.

Used after a change of a metric's definition (a new rollup is backfilled this way) and to
check that the live path and a full recomputation agree. Runs in one transaction that
locks the rollups against writers (not readers), so the live consumer waits and reports
keep reading the old figures until the new ones are committed. Every stream of `STREAMS`
is replayed: its raw table's rows become events again (`raw.event_of_row`) and go through
its `fold`, CHUNK events at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from services.aggregator.store import apply_deltas
from services.storage.connection import Connection
from services.streams import STREAMS, ConsumedEvent, Stream
from services.streams.rollups import Deltas

CHUNK = 50_000

Progress = Callable[[int], None]


def rollup_tables() -> tuple[str, ...]:
    """Every stream's rollup tables, by name."""
    return tuple(table.name for table in STREAMS.rollup_tables)


async def rebuild_rollups(conn: Connection, zone_name: str, progress: Progress | None = None) -> int:
    """Recompute the rollups from every stream's raw table; return events folded.

    The rollups are rebuilt in `zone_name`, which becomes the zone recorded for them (this is
    how the platform time zone is changed).
    """
    zone = ZoneInfo(zone_name)
    tables = rollup_tables()
    async with conn.transaction():
        await conn.execute(f"LOCK TABLE {', '.join(tables)}, rollup_settings IN EXCLUSIVE MODE")
        # DELETE, not TRUNCATE: TRUNCATE would lock out the readers too.
        for table in tables:
            await conn.execute(f"DELETE FROM {table}")
        await conn.execute(
            """INSERT INTO rollup_settings (singleton, time_zone) VALUES (true, $1)
               ON CONFLICT (singleton) DO UPDATE SET time_zone = excluded.time_zone""",
            zone_name,
        )
        done = await fold_raw_tables(conn, zone, progress)
    return done


async def fold_raw_tables(
    conn: Connection, zone: tzinfo, progress: Progress | None = None, received_by: datetime | None = None
) -> int:
    """Fold every stream's raw rows (only those received by `received_by`, if given) into the rollup
    tables the connection's search path names; the events folded. Call inside a transaction."""
    done = 0
    received = "" if received_by is None else " WHERE received_at <= $1"
    args = () if received_by is None else (received_by,)
    for stream in STREAMS.values():
        raw = stream.raw
        chunk: list[ConsumedEvent[Any]] = []
        async for row in conn.cursor(f"SELECT {', '.join(raw.columns)} FROM {raw.name}{received}", *args):
            event = raw.event_of_row(row)
            chunk.append(ConsumedEvent(event, row["received_at"], row["kafka_partition"], row["kafka_offset"]))
            if len(chunk) == CHUNK:
                done = await _fold_chunk(conn, stream, chunk, zone, done, progress)
                chunk = []
        done = await _fold_chunk(conn, stream, chunk, zone, done, progress)
    return done


async def _fold_chunk(
    conn: Connection,
    stream: Stream[Any],
    chunk: list[ConsumedEvent[Any]],
    zone: tzinfo,
    done: int,
    progress: Progress | None,
) -> int:
    deltas = Deltas()
    stream.fold(chunk, zone, deltas)
    await apply_deltas(conn, deltas)
    done += len(chunk)
    if progress is not None:
        progress(done)
    return done


async def raw_event_count(conn: Connection) -> int:
    """Events a rebuild will fold (for a progress bar's total)."""
    total = 0
    for stream in STREAMS.values():
        total += int(await conn.fetchval(f"SELECT count(*) FROM {stream.raw.name}"))
    return total
