"""The reference write for the aggregator: COPY to a stage + `INSERT ... ON CONFLICT DO NOTHING`.

The simplest exactly-once write PostgreSQL offers for the same rows: per transaction of 20,000
events (the aggregator's batch), the raw rows the aggregator would write are copied into an
unlogged stage table and inserted into a table with a unique (org_code, event_id), duplicates
skipped. No key store, no months, no rollups, no Kafka: what the aggregator's rate is compared
with ("ratio against COPY + INSERT ON CONFLICT", issue 12), measured in the same run and
database, so both see the same machine.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord

from bench.keystore import backend_cpu_s
from services.aggregator.decoding import DeadLetter, decode_into
from services.aggregator.store import copy_text, first_of_each_key
from services.contract.envelope import OutgoingRecord
from services.streams import STREAMS, ConsumedEvent

BATCH_EVENTS = 20_000


@dataclass(frozen=True)
class ReferenceRate:
    """Events/s of the reference write, and its backend's CPU per event."""

    events: int
    seconds: float
    backend_us_per_event: float

    @property
    def rate(self) -> float:
        """Events per second (wall clock)."""
        return self.events / self.seconds if self.seconds else 0.0


def _decoded(records: list[OutgoingRecord]) -> list[ConsumedEvent[Any]]:
    events: list[ConsumedEvent[Any]] = []
    dead: list[DeadLetter] = []
    for offset, record in enumerate(records):
        decode_into(ConsumerRecord("t", 0, offset, 0, 0, record.key, record.value, None, 0, 0, []), events, dead)
    return events


async def copy_on_conflict(database_url: str, records: list[OutgoingRecord]) -> ReferenceRate:
    """Write the records' events the reference way, in the aggregator's batch size; wall time and backend CPU."""
    events = _decoded(records)
    bodies = []
    for start in range(0, len(events), BATCH_EVENTS):
        chunk = events[start : start + BATCH_EVENTS]
        keyed = first_of_each_key(chunk)
        bodies.append({name: copy_text(STREAMS[name], list(by_key.values())) for name, by_key in keyed.items()})
    conn = await asyncpg.connect(database_url)
    try:
        for stream in STREAMS.values():
            table = stream.raw.name
            await conn.execute(f"CREATE UNLOGGED TABLE ref_stage_{table} (LIKE {table})")
            await conn.execute(f"CREATE TABLE ref_{table} (LIKE {table}, UNIQUE (org_code, event_id))")
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        cpu_before, started = backend_cpu_s(pid), time.perf_counter()
        for body in bodies:
            async with conn.transaction():
                for name, text in body.items():
                    raw = STREAMS[name].raw
                    await conn.execute(f"TRUNCATE ref_stage_{raw.name}")
                    await conn.copy_to_table(
                        f"ref_stage_{raw.name}", source=io.BytesIO(text), columns=list(raw.columns), format="text"
                    )
                    await conn.execute(
                        f"INSERT INTO ref_{raw.name} SELECT * FROM ref_stage_{raw.name} ON CONFLICT DO NOTHING"
                    )
        seconds, cpu = time.perf_counter() - started, backend_cpu_s(pid) - cpu_before
        for stream in STREAMS.values():
            await conn.execute(f"DROP TABLE ref_stage_{stream.raw.name}, ref_{stream.raw.name}")
    finally:
        await conn.close()
    return ReferenceRate(len(events), seconds, cpu / len(events) * 1e6 if events else 0.0)
