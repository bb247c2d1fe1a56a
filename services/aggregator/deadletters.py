"""Read and replay the dead-letter topic.

A dead letter is a record, or one event of a record, that the aggregator could not read
or validate; consumption went on without it. Once the cause is fixed (a contract change
deployed, a producer bug repaired), `replay` publishes the dead events again to the events
topic: they are validated afresh, counted once if they are now valid, and dead-lettered
again (with their new origin) if not.

A dead letter is capped at `MAX_DEAD_LETTER_BYTES`, well below the topic's message limit: a
letter the broker refused would be retried for ever and stall every partition polled with it.
What does not fit is cut (`truncated` says how much there was); the whole record stays at its
origin (topic, partition, offset) while the events topic retains it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.contract.envelope import ENVELOPE_VERSION

# The dead-letter topic takes 4 MiB messages; a letter stays far below, whatever it carries.
MAX_DEAD_LETTER_BYTES = 1024 * 1024
_RECORD_PREFIX_BYTES = 64 * 1024
_DETAIL_CHARS = 4000


@dataclass(frozen=True)
class DeadLetter:
    """One entry of the dead-letter topic."""

    offset: int
    reason: str
    detail: str
    origin: dict[str, Any]
    event_type: str | None
    event: Any
    record: str | None
    truncated: dict[str, int] | None = None
    """Sizes of what was cut to keep the letter small (None: nothing was cut)."""

    @property
    def replayable(self) -> bool:
        """Only single events with a known type can be sent again as an envelope."""
        return self.event_type is not None and isinstance(self.event, dict)


def _parse(offset: int, value: bytes | None) -> DeadLetter:
    doc = orjson.loads(value or b"{}")
    return DeadLetter(
        offset=offset,
        reason=str(doc.get("reason", "")),
        detail=str(doc.get("detail", "")),
        origin=dict(doc.get("origin") or {}),
        event_type=doc.get("event_type"),
        event=doc.get("event"),
        record=doc.get("record"),
        truncated=doc.get("truncated"),
    )


def dead_letter_value(
    reason: str, event_type: str | None, detail: str, origin: dict[str, Any], event: Any, record: bytes | None
) -> bytes:
    """The dead-letter topic's value for one refused record (`event` None) or event, capped in size."""
    letter: dict[str, Any] = {
        "reason": reason,
        "event_type": event_type,
        "detail": detail,
        "origin": origin,
        "event": event,
        "record": None if event is not None else (record or b"").decode("utf-8", "replace"),
    }
    value = orjson.dumps(letter)
    if len(value) <= MAX_DEAD_LETTER_BYTES:
        return value
    # Too big to send: keep why and where from, and a prefix to recognise it by.
    raw = record or b""
    letter["truncated"] = {"letter_bytes": len(value), "record_bytes": len(raw)}
    letter["detail"] = detail[:_DETAIL_CHARS]
    letter["event"] = None
    letter["record"] = raw[:_RECORD_PREFIX_BYTES].decode("utf-8", "replace")
    return orjson.dumps(letter)


async def read_dead_letters(bootstrap: str, topic: str, limit: int, start: int = 0) -> list[DeadLetter]:
    """Up to `limit` dead letters from offset `start` (the topic has one partition)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, start)
        letters: list[DeadLetter] = []
        while len(letters) < limit and await consumer.position(tp) < end:
            polled = await consumer.getmany(tp, timeout_ms=1000, max_records=min(limit - len(letters), 500))
            for record in polled.get(tp, []):
                letters.append(_parse(record.offset, record.value))
        return letters
    finally:
        await consumer.stop()


async def replay_dead_letters(bootstrap: str, events_topic: str, letters: list[DeadLetter]) -> int:
    """Publish the replayable letters to the events topic again; return how many were sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    sent = 0
    try:
        now = datetime.now(UTC).isoformat()
        for letter in letters:
            if not letter.replayable:
                continue
            envelope = {"v": ENVELOPE_VERSION, "type": letter.event_type, "received_at": now, "events": [letter.event]}
            org = letter.event.get("org_code")
            key = org.encode("utf-8") if isinstance(org, str) else None
            await producer.send_and_wait(events_topic, orjson.dumps(envelope), key=key)
            sent += 1
    finally:
        await producer.stop()
    return sent
