"""Per-event CPU of the two hot paths, in process, without broker or database.

    .venv/bin/python -m bench.event_cpu [EVENTS]        # default 200,000 demo events

- aggregator: topic records as the collector writes them (`workload.topic_records`) → decode and
  validate (`decoding.decode_into`), split by stream and key, COPY text, fold into rollup deltas,
  and the rollup upserts' parameters: everything `store.apply_batch` computes, without the SQL.
- collector: 1,000-event and single-event bodies → parse, authorise, validate against the
  stream's model and the demo reference data, encode the Kafka records (`Intake.accept`'s
  steps, without the publish).

CPU time of this process (`time.process_time`), best of ROUNDS, so the figures compare across
changes on a shared machine (wall-clock benchmarks in `bench.run` depend on who else runs).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiokafka import ConsumerRecord

from bench.workload import demo_stream, topic_records
from services.aggregator.decoding import DeadLetter, decode_into
from services.aggregator.gcsettings import tune_for_batches
from services.aggregator.store import copy_text, first_of_each_key
from services.collector.ingest import authorize, parse_events, validate_events
from services.contract.envelope import encode_records
from services.storage.reference import ReferenceSnapshot, read_reference_folder
from services.streams import STREAMS, ConsumedEvent
from services.streams.rollups import Deltas
from services.web.auth import ADMIN

ROUNDS = 3
BATCH_EVENTS = 20_000  # the aggregator's default max_batch_events
ZONE = ZoneInfo("Asia/Shanghai")
REFERENCE = Path(__file__).resolve().parents[1] / "services" / "demo" / "data" / "reference-2020-04"


def _apply_without_sql(events: list[ConsumedEvent[Any]]) -> None:
    deltas = Deltas()
    for name, keyed in first_of_each_key(events).items():
        stream, new = STREAMS[name], list(keyed.values())
        copy_text(stream, new)
        stream.fold(new, ZONE, deltas)
    for table in STREAMS.rollup_tables:
        rows = deltas.tables.get(table.name)
        if rows:
            table.columns(rows)


def aggregator(records: list[ConsumerRecord[bytes, bytes]]) -> int:
    """Decode, validate and apply (without SQL) the records, BATCH_EVENTS per batch."""
    total = 0
    events: list[ConsumedEvent[Any]] = []
    dead: list[DeadLetter] = []
    for record in records:
        decode_into(record, events, dead)
        if len(events) >= BATCH_EVENTS:
            total += len(events)
            _apply_without_sql(events)
            events = []
    total += len(events)
    _apply_without_sql(events)
    return total


def intake(bodies: list[tuple[str, bytes]], ref: ReferenceSnapshot) -> int:
    """The collector's checks and encoding of each body."""
    accepted = 0
    for name, body in bodies:
        stream = STREAMS[name]
        raw_events = parse_events(body)
        authorize(ADMIN, raw_events)
        accepted += validate_events(stream, raw_events, ref)
        encode_records(stream.name, raw_events, datetime.now(UTC))
    return accepted


def _snapshot() -> ReferenceSnapshot:
    ref = read_reference_folder(REFERENCE)
    return ReferenceSnapshot(
        1,
        frozenset(i.org_code for i in ref.institutions),
        frozenset(t.table_code for t in ref.tables),
        {k.kiosk_id: k.org_code for k in ref.kiosks},
    )


def _bodies(n: int) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """1,000-event bodies per stream (in stream order) and single-event bodies of the first n // 4 events."""
    batches: list[tuple[str, bytes]] = []
    singles: list[tuple[str, bytes]] = []
    buffers: dict[str, list[dict[str, Any]]] = {name: [] for name in STREAMS}
    for count, (name, event) in enumerate(demo_stream()):
        if count >= n:
            break
        if count < n // 4:
            singles.append((name, orjson.dumps(event)))
        buffers[name].append(event)
        if len(buffers[name]) == 1000:
            batches.append((name, orjson.dumps({"events": buffers[name]})))
            buffers[name] = []
    return batches, singles


def _best(measure: Callable[[], int]) -> tuple[float, int]:
    best, events = float("inf"), 0
    for _ in range(ROUNDS):
        started = time.process_time()
        events = measure()
        best = min(best, (time.process_time() - started) / events)
    return best * 1e6, events


def main(n: int) -> None:
    """Print µs of CPU per event for each path."""
    load = topic_records(n)
    records = [
        ConsumerRecord("bench", i % 6, i, 0, 0, r.key, r.value, None, len(r.key), len(r.value), [])
        for i, r in enumerate(load.records)
    ]
    batches, singles = _bodies(n)
    ref = _snapshot()
    tune_for_batches()  # as the aggregator process does
    for what, measure in (
        ("aggregator: decode+validate+dedupe+COPY text+fold+upsert parameters", lambda: aggregator(records)),
        ("collector: intake of 1,000-event bodies", lambda: intake(batches, ref)),
        ("collector: intake of single-event bodies", lambda: intake(singles, ref)),
    ):
        us, events = _best(measure)
        print(f"{what}: {us:.2f} µs/event (best of {ROUNDS}, {events:,} events)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
