"""The JSON Schemas in schemas/ and the pydantic model accept and refuse the same documents."""

from __future__ import annotations

from typing import Any

import pytest

from services.streams import STREAMS
from tests.fixtures.events import kiosk, upload
from tests.fixtures.streams import schema_validator

UPLOAD_CASES: list[tuple[dict[str, Any], bool]] = [
    (upload(), True),
    (upload(document_count=5), True),
    (upload(uploaded_at="2020-04-01T00:00:00Z"), True),
    (upload(uploaded_at="2020-04-01T00:00:00.123456-05:00"), True),
    (upload(record_count=0), True),
    (upload(record_count=10_000_000), True),
    (upload(record_count=10_000_001), False),
    (upload(record_count=-1), False),
    (upload(record_count=1.0), True),
    (upload(record_count=1e3), True),
    (upload(record_count=1.5), False),
    (upload(record_count="5"), False),
    (upload(record_count=True), False),
    (upload(mode="batch"), False),
    (upload(business_date="2020-4-1"), False),
    (upload(business_date="2020-04-01T00:00:00"), False),
    (upload(uploaded_at="2020-04-01T10:00:00"), False),
    (upload(uploaded_at="2020-04-01 10:00:00+08:00"), False),
    (upload(uploaded_at=1585706400), False),
    (upload(event_id=""), False),
    (upload(event_id="a" * 128), True),
    (upload(event_id="a" * 129), False),
    (upload(event_id="has space"), False),
    (upload(event_id="ok.id:with-chars_1"), True),
    (upload(unknown="x"), False),
    ({k: v for k, v in upload().items() if k != "table_code"}, False),
]

KIOSK_CASES: list[tuple[dict[str, Any], bool]] = [
    (kiosk(), True),
    (kiosk(amount="0"), True),
    (kiosk(amount="12"), True),
    (kiosk(amount="12.5"), True),
    (kiosk(amount="999999999999.99"), True),
    (kiosk(amount="1.234"), False),
    (kiosk(amount="-1.00"), False),
    (kiosk(amount="01.00"), False),
    (kiosk(amount="1e3"), False),
    (kiosk(amount="NaN"), False),
    (kiosk(amount=12.5), False),
    (kiosk(kind="refund"), False),
    (kiosk(occurred_at="2020-04-01"), False),
    (kiosk(extra=None), False),
]


@pytest.mark.parametrize(("event", "valid"), UPLOAD_CASES)
def test_upload_schema_and_model_agree(event: dict[str, Any], valid: bool) -> None:
    schema_ok = schema_validator("upload-event.schema.json").is_valid(event)
    _, problems = STREAMS["upload"].validate([event])
    assert (schema_ok, not problems) == (valid, valid)


@pytest.mark.parametrize(("event", "valid"), KIOSK_CASES)
def test_kiosk_schema_and_model_agree(event: dict[str, Any], valid: bool) -> None:
    schema_ok = schema_validator("kiosk-transaction.schema.json").is_valid(event)
    _, problems = STREAMS["kiosk"].validate([event])
    assert (schema_ok, not problems) == (valid, valid)


def test_batch_schema_bounds_the_batch() -> None:
    batch = schema_validator("upload-batch.schema.json")
    assert batch.is_valid({"events": [upload()] * 1000})
    assert not batch.is_valid({"events": [upload()] * 1001})
    assert not batch.is_valid({"events": []})
    assert batch.is_valid(upload())


def test_problems_name_index_field_and_reason() -> None:
    _, problems = STREAMS["upload"].validate([upload(), upload(record_count=-1, mode="x"), "not an object"])
    assert {(p.index, p.field) for p in problems} == {(1, "record_count"), (1, "mode"), (2, "(event)")}
    assert all(p.reason for p in problems)
