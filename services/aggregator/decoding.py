"""From one topic record to validated events, or dead letters saying why not.

The record's envelope names its stream (`type`); the stream's model validates the events.
The collector validated every event before publishing, so almost every record is valid as a
whole: its events are validated with one list validation (one call into pydantic-core per
record instead of one per event; ~1 µs per event less). Only when that fails are the events
validated one by one, so each invalid event is dead-lettered on its own, with its own reason,
and the valid events of the same record are still applied, in their order. Every dead letter
of an event carries its stream's name.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from services.aggregator.errors import DeadLetterError
from services.contract.envelope import Envelope, EnvelopeError, decode_record
from services.streams import STREAMS, ConsumedEvent, Stream

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
# A record (or one of its events) that cannot be applied: the record it came from, why, and
# the raw event (None when the record itself could not be read).
DeadLetter: TypeAlias = "tuple[ConsumerRecord[bytes, bytes], DeadLetterError, Any]"


def decode_into(record: Record, events: list[ConsumedEvent[Any]], dead: list[DeadLetter]) -> None:
    """Append the record's valid events to `events` and what cannot be applied to `dead`."""
    try:
        envelope = decode_record(record.value, STREAMS)
    except EnvelopeError as exc:
        dead.append((record, DeadLetterError("undecodable", str(exc)), None))
        return
    received_at, partition, offset = envelope.received_at, record.partition, record.offset
    try:
        valid = envelope.stream.list_adapter.validate_python(envelope.events)
    except ValidationError:
        _decode_one_by_one(record, envelope, events, dead)
        return
    events.extend([ConsumedEvent(event, received_at, partition, offset) for event in valid])


def _decode_one_by_one(
    record: Record, envelope: Envelope[Stream[Any]], events: list[ConsumedEvent[Any]], dead: list[DeadLetter]
) -> None:
    stream = envelope.stream
    for raw in envelope.events:
        try:
            event = stream.model.model_validate(raw)
        except ValidationError as exc:
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
            dead.append((record, DeadLetterError("invalid_event", detail, stream.name), raw))
            continue
        events.append(ConsumedEvent(event, envelope.received_at, record.partition, record.offset))


def unstorable(consumed: ConsumedEvent[Any], exc: Exception) -> tuple[DeadLetterError, Any]:
    """The dead letter of a valid event the database refuses, and the event as it was sent."""
    stream = STREAMS.of(consumed.event)
    return DeadLetterError("unstorable", repr(exc), stream.name), consumed.event.model_dump(mode="json")
