"""Topic record → validated events or dead letters (services.aggregator.decoding)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from services.aggregator.decoding import DeadLetter, decode_into
from services.contract.envelope import encode_records
from services.streams import ConsumedEvent
from services.streams.kiosk.model import KioskTransaction
from services.streams.uploads.model import UploadEvent
from tests.fixtures.events import kiosk, upload

RECEIVED = datetime(2020, 4, 1, 1, 2, 3, 456789, tzinfo=UTC)


def _record(value: bytes | None, partition: int = 2, offset: int = 17) -> ConsumerRecord[bytes, bytes]:
    size = len(value) if value is not None else 0
    return ConsumerRecord("t", partition, offset, 0, 0, b"k", value, None, 1, size, [])


def _envelope(event_type: str, events: list[Any]) -> bytes:
    doc = {"v": 1, "type": event_type, "received_at": RECEIVED.isoformat(), "events": events}
    return orjson.dumps(doc)


def _decode(value: bytes | None) -> tuple[list[ConsumedEvent[Any]], list[DeadLetter]]:
    events: list[ConsumedEvent[Any]] = []
    dead: list[DeadLetter] = []
    decode_into(_record(value), events, dead)
    return events, dead


def test_a_valid_record_gives_every_event_with_its_origin_in_order() -> None:
    raws = [kiosk(event_id=f"k{i}") for i in range(5)]
    [record] = encode_records("kiosk", raws, RECEIVED)
    events, dead = _decode(record.value)
    assert dead == []
    assert [c.event.event_id for c in events] == [f"k{i}" for i in range(5)]
    assert all(isinstance(c.event, KioskTransaction) for c in events)
    assert {(c.received_at, c.partition, c.offset) for c in events} == {(RECEIVED, 2, 17)}
    assert events[0].event == KioskTransaction.model_validate(raws[0])


def test_invalid_events_are_dead_lettered_one_by_one_and_the_rest_kept() -> None:
    bad_count = upload(event_id="u-bad", record_count=-1)
    not_an_object = "nope"
    raws = [upload(event_id="u1"), bad_count, upload(event_id="u2"), not_an_object]
    events, dead = _decode(_envelope("upload", raws))
    assert [c.event.event_id for c in events] == ["u1", "u2"]
    assert all(isinstance(c.event, UploadEvent) for c in events)
    assert [(error.reason, error.event_type, raw) for _, error, raw in dead] == [
        ("invalid_event", "upload", bad_count),
        ("invalid_event", "upload", not_an_object),
    ]
    assert "record_count" in dead[0][1].detail
    assert all(record.offset == 17 for record, _, _ in dead)


def test_an_unreadable_record_is_one_dead_letter_without_event() -> None:
    for value in (None, b"{not json", orjson.dumps({"v": 2, "type": "kiosk", "events": []})):
        events, dead = _decode(value)
        assert events == []
        assert [(error.reason, raw) for _, error, raw in dead] == [("undecodable", None)]


def test_an_event_of_the_other_type_is_refused() -> None:
    # A kiosk transaction inside an upload record does not validate as an upload.
    events, dead = _decode(_envelope("upload", [kiosk()]))
    assert events == []
    assert [error.reason for _, error, _ in dead] == ["invalid_event"]
