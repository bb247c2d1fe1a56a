"""From one topic record to validated events, or dead letters saying why not.

The collector validated every event before publishing, so almost every record is valid as a
whole: its events are validated with one list validation (one call into pydantic-core per
record instead of one per event; ~1 µs per event less). Only when that fails are the events
validated one by one, so each invalid event is dead-lettered on its own, with its own reason,
and the valid events of the same record are still applied, in their order.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from aiokafka import ConsumerRecord
from pydantic import TypeAdapter, ValidationError

from services.aggregator.errors import DeadLetterError
from services.aggregator.store import ConsumedEvent
from services.contract.envelope import Envelope, EnvelopeError, decode_record
from services.contract.models import EVENT_MODELS, EventType, KioskTransaction, UploadEvent

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
# A record (or one of its events) that cannot be applied: the record it came from, why, and
# the raw event (None when the record itself could not be read).
DeadLetter: TypeAlias = "tuple[ConsumerRecord[bytes, bytes], DeadLetterError, Any]"

_LISTS: dict[EventType, TypeAdapter[list[UploadEvent]] | TypeAdapter[list[KioskTransaction]]] = {
    EventType.UPLOAD: TypeAdapter(list[UploadEvent]),
    EventType.KIOSK: TypeAdapter(list[KioskTransaction]),
}


def decode_into(record: Record, events: list[ConsumedEvent], dead: list[DeadLetter]) -> None:
    """Append the record's valid events to `events` and what cannot be applied to `dead`."""
    try:
        envelope = decode_record(record.value)
    except EnvelopeError as exc:
        dead.append((record, DeadLetterError("undecodable", str(exc)), None))
        return
    received_at, partition, offset = envelope.received_at, record.partition, record.offset
    try:
        valid = _LISTS[envelope.event_type].validate_python(envelope.events)
    except ValidationError:
        _decode_one_by_one(record, envelope, events, dead)
        return
    events.extend([ConsumedEvent(event, received_at, partition, offset) for event in valid])


def _decode_one_by_one(record: Record, envelope: Envelope, events: list[ConsumedEvent], dead: list[DeadLetter]) -> None:
    event_type = envelope.event_type
    model = EVENT_MODELS[event_type]
    for raw in envelope.events:
        try:
            event = model.model_validate(raw)
        except ValidationError as exc:
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
            dead.append((record, DeadLetterError("invalid_event", detail, event_type.value), raw))
            continue
        events.append(ConsumedEvent(event, envelope.received_at, record.partition, record.offset))
