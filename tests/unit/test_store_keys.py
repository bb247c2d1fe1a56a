"""A batch's events split by stream and key, first occurrence kept (services.aggregator.store)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.aggregator.store import first_of_each_key
from services.streams import ConsumedEvent
from services.streams.kiosk.model import KioskTransaction
from services.streams.uploads.model import UploadEvent
from tests.fixtures.events import kiosk, upload

AT = datetime(2020, 4, 1, tzinfo=UTC)


def _kiosk(offset: int, **fields: str) -> ConsumedEvent[KioskTransaction]:
    return ConsumedEvent(KioskTransaction.model_validate(kiosk(**fields)), AT, 0, offset)


def _upload(offset: int, **fields: str) -> ConsumedEvent[UploadEvent]:
    return ConsumedEvent(UploadEvent.model_validate(upload(**fields)), AT, 0, offset)


def test_types_are_split_and_the_first_of_a_repeated_key_is_kept_in_order() -> None:
    events = [
        _kiosk(1, event_id="a", org_code="H1"),
        _upload(2, event_id="a", org_code="H1"),  # same key, other type: not a duplicate
        _kiosk(3, event_id="b", org_code="H1"),
        _kiosk(4, event_id="a", org_code="H1", amount="99.00"),  # resubmission: dropped
        _kiosk(5, event_id="a", org_code="H2"),  # same id, other institution: kept
    ]
    keyed = first_of_each_key(events)
    assert list(keyed) == ["upload", "kiosk"]  # registry order
    uploads, kiosks = keyed["upload"], keyed["kiosk"]
    assert list(uploads) == [("H1", "a")]
    assert list(kiosks) == [("H1", "a"), ("H1", "b"), ("H2", "a")]
    assert [c.offset for c in kiosks.values()] == [1, 3, 5]
    assert uploads[("H1", "a")].offset == 2


def test_no_events_gives_nothing() -> None:
    assert first_of_each_key([]) == {}
