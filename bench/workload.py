"""Request bodies and topic records made from the demo month, so the load looks like real traffic.

The April 2020 stream (services/demo) is what the platform is built for: ~2.65 M events of every
registered stream, dozens of institutions in any 1,000 consecutive events (so the collector
writes one Kafka record per institution and batch), arrival order with late and duplicate events.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from services.contract.envelope import OutgoingRecord, encode_records
from services.demo.month import plan_month
from services.streams import STREAMS, Stream

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
    got = collect_streams({"upload": uploads, "kiosk": kiosk}, examples=False)
    return got["upload"], got["kiosk"]


def collect_streams(
    want: int | dict[str, int], *, examples: bool = True, streams: Iterable[Stream[Any]] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Up to `want` events of each registered stream (or of `streams`), in registry order.

    From the demo month where it has events of the stream (real institutions, tables and kiosks,
    and its arrival order); a stream the demo month does not have yet gets events made from its
    declared example (`from_example`), so a new stream is benchmarked without code here.
    """
    names = [s.name for s in streams] if streams is not None else list(STREAMS)
    wanted = want if isinstance(want, dict) else dict.fromkeys(names, want)
    got: dict[str, list[dict[str, Any]]] = {name: [] for name in wanted}
    missing = {name for name, n in wanted.items() if n > 0}
    for kind, event in demo_stream():
        bucket = got.get(kind)
        if bucket is not None and len(bucket) < wanted[kind]:
            bucket.append(event)
            if len(bucket) >= wanted[kind]:
                missing.discard(kind)
                if not missing:
                    break
    if examples:
        for name, bucket in got.items():
            if not bucket:
                bucket.extend(from_example(STREAMS[name], wanted[name]))
    return got


def from_example(stream: Stream[Any], n: int) -> list[dict[str, Any]]:
    """`n` copies of the stream's declared example, each with its own event_id."""
    base = str(stream.example["event_id"])
    return [{**stream.example, "event_id": f"{base}-{i}"[-128:]} for i in range(n)]


def refill(events: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """`events` repeated under new event_ids until there are `n` (a stream with few demo events)."""
    out = list(events[:n])
    round_ = 1
    while events and len(out) < n:
        out.extend({**e, "event_id": f"{e['event_id']}-r{round_}"[-128:]} for e in events[: n - len(out)])
        round_ += 1
    return out


def batch_requests(kind: str, events: list[dict[str, Any]], size: int = BATCH) -> list[Request]:
    """`{"events": [...]}` bodies of `size` events (the last partial batch is dropped: equal bodies)."""
    if len(events) < size:
        events = refill(events, size)
    return [
        Request(PATHS[kind], orjson.dumps({"events": events[i : i + size]}), size)
        for i in range(0, len(events) - size + 1, size)
    ]


def single_requests(kind: str, events: list[dict[str, Any]]) -> list[Request]:
    """One body per event: the contract's single-object form."""
    return [Request(PATHS[kind], orjson.dumps(event), 1) for event in events]


def stream_batches(limit: int | None = None) -> Iterator[Request]:
    """The demo stream as the replay posts it: per endpoint, batches of 1,000 in arrival order."""
    buffers: dict[str, list[dict[str, Any]]] = {name: [] for name in STREAMS}
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
    buffers: dict[str, list[dict[str, Any]]] = {name: [] for name in STREAMS}
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
