"""The record format on the events topic, shared by the collector (writer) and aggregator (reader).

One Kafka record carries the events of one request for one institution, keyed by `org_code`
(so an institution's events stay in one partition, in order):

    {"v": 1, "type": "<stream name>", "received_at": "<RFC 3339>", "events": [<contract event>, ...]}

`type` is the stream's name (`services/streams/`: "upload", "kiosk"); records already on the
topic carry these names, so a stream's name never changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson

ENVELOPE_VERSION = 1

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One record to publish."""

    key: bytes
    value: bytes
    events: int


def encode_records(event_type: str, raw_events: list[dict[str, Any]], received_at: datetime) -> list[OutgoingRecord]:
    """Group validated raw events by institution into records, preserving their order."""
    by_org: dict[str, list[dict[str, Any]]] = {}
    for event in raw_events:
        by_org.setdefault(event["org_code"], []).append(event)
    stamp = received_at.isoformat()
    return [
        OutgoingRecord(
            key=org.encode("utf-8"),
            value=orjson.dumps({"v": ENVELOPE_VERSION, "type": event_type, "received_at": stamp, "events": events}),
            events=len(events),
        )
        for org, events in by_org.items()
    ]


class EnvelopeError(ValueError):
    """A record on the topic that is not a readable envelope."""


@dataclass(frozen=True, slots=True)
class Envelope(Generic[S]):
    """A decoded record; its events are still raw and are validated by the reader."""

    stream: S
    """What the reader registered under the record's `type`."""
    received_at: datetime
    events: list[Any]


def decode_record(value: bytes | None, streams: Mapping[str, S]) -> Envelope[S]:
    """Decode one topic record whose `type` is one of `streams`, or EnvelopeError saying why it cannot be read."""
    if value is None:
        raise EnvelopeError("record has no value")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != ENVELOPE_VERSION:
        raise EnvelopeError(f"not a version {ENVELOPE_VERSION} envelope")
    try:
        stream = streams[doc["type"]]
        received_at = datetime.fromisoformat(doc["received_at"])
        events = doc["events"]
    except (KeyError, ValueError, TypeError) as exc:
        raise EnvelopeError(f"bad envelope field: {exc!r}") from exc
    if not isinstance(events, list) or received_at.tzinfo is None:
        raise EnvelopeError("envelope events must be a list and received_at carry an offset")
    return Envelope(stream, received_at, events)
