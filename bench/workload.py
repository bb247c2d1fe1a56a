"""Request bodies and topic records made from the demo month, so the load looks like real traffic.

The April 2020 stream (services/demo) is what the platform is built for: ~1.19 M events, 93 %
kiosk transactions, ~37 institutions in any 1,000 consecutive events (so the collector writes
~37 Kafka records per batch, one per institution), arrival order with late and duplicate events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from services.contract.envelope import OutgoingRecord, encode_records
from services.demo.month import plan_month
from services.streams import STREAMS

PATHS = {name: stream.path for name, stream in STREAMS.items()}
BATCH = 1_000


@dataclass(frozen=True, slots=True)
class Request:
    """One prepared POST."""

    path: str
    body: bytes
    events: int


def demo_stream() -> Iterator[tuple[str, dict[str, Any]]]:
    """The demo month in arrival order, as `("upload"|"kiosk", event)`."""
    for kind, event in plan_month().events():
        yield kind, dict(event)


def collect(uploads: int, kiosk: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The first `uploads` upload events and `kiosk` kiosk events of the stream.

    The month has only ~85 k upload events, so more than that cannot be asked for.
    """
    got: dict[str, list[dict[str, Any]]] = {"upload": [], "kiosk": []}
    want = {"upload": uploads, "kiosk": kiosk}
    for kind, event in demo_stream():
        if len(got[kind]) < want[kind]:
            got[kind].append(event)
            if all(len(got[k]) >= want[k] for k in want):
                break
    return got["upload"], got["kiosk"]


def batch_requests(kind: str, events: list[dict[str, Any]], size: int = BATCH) -> list[Request]:
    """`{"events": [...]}` bodies of `size` events (the last partial batch is dropped: equal bodies)."""
    return [
        Request(PATHS[kind], orjson.dumps({"events": events[i : i + size]}), size)
        for i in range(0, len(events) - size + 1, size)
    ]


def single_requests(kind: str, events: list[dict[str, Any]]) -> list[Request]:
    """One body per event: the contract's single-object form."""
    return [Request(PATHS[kind], orjson.dumps(event), 1) for event in events]


def stream_batches(limit: int | None = None) -> Iterator[Request]:
    """The demo stream as the replay posts it: per endpoint, batches of 1,000 in arrival order."""
    buffers: dict[str, list[dict[str, Any]]] = {"upload": [], "kiosk": []}
    for n, (kind, event) in enumerate(demo_stream()):
        if limit is not None and n >= limit:
            break
        buffer = buffers[kind]
        buffer.append(event)
        if len(buffer) == BATCH:
            yield Request(PATHS[kind], orjson.dumps({"events": buffer}), BATCH)
            buffers[kind] = []
    for kind, buffer in buffers.items():
        if buffer:
            yield Request(PATHS[kind], orjson.dumps({"events": buffer}), len(buffer))


@dataclass
class TopicLoad:
    """Records as the collector would have written them, and what they hold."""

    records: list[OutgoingRecord]
    events: int
    distinct_events: int


def topic_records(limit: int) -> TopicLoad:
    """The first `limit` events of the stream, batched per endpoint and encoded like the collector does."""
    received_at = datetime.now(UTC)
    records: list[OutgoingRecord] = []
    keys: set[tuple[str, str, str]] = set()
    buffers: dict[str, list[dict[str, Any]]] = {"upload": [], "kiosk": []}
    count = 0

    def flush(kind: str) -> None:
        if buffers[kind]:
            records.extend(encode_records(kind, buffers[kind], received_at))
            buffers[kind] = []

    for kind, event in demo_stream():
        if count >= limit:
            break
        count += 1
        keys.add((kind, event["org_code"], event["event_id"]))
        buffers[kind].append(event)
        if len(buffers[kind]) == BATCH:
            flush(kind)
    for kind in buffers:
        flush(kind)
    return TopicLoad(records, count, len(keys))


def write_wrk_requests(path: Path, token: str, requests: list[Request]) -> None:
    """The file bench/wrk/requests.lua reads: the token line, then `PATH LENGTH\\n<body>` per request."""
    with path.open("wb") as out:
        out.write(token.encode() + b"\n")
        for req in requests:
            out.write(f"{req.path} {len(req.body)}\n".encode())
            out.write(req.body)
