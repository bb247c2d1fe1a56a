"""The JSON Schemas in schemas/ and the pydantic model accept and refuse the same documents."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any

import pytest
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, TypeAdapter, ValidationError

from services.contract import models
from services.contract.validation import field_problems
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
    # Revision 2's data-quality counts: optional, 0 <= n <= 10,000,000 (and <= record_count, below).
    (upload(incomplete_records=0, nonconforming_records=3, unlinked_records=10), True),
    (upload(record_count=10_000_000, incomplete_records=10_000_000), True),
    (upload(incomplete_records=-1), False),
    (upload(nonconforming_records=1.5), False),
    (upload(unlinked_records="2"), False),
    (upload(unlinked_records=None), False),
    (upload(record_count=10_000_001, incomplete_records=10_000_001), False),
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


@pytest.mark.parametrize("name", ["incomplete_records", "nonconforming_records", "unlinked_records"])
def test_a_quality_count_above_the_records_is_refused_on_its_field(name: str) -> None:
    # JSON Schema cannot compare two fields, so only the model says this (schemas/ says it in prose).
    assert schema_validator("upload-event.schema.json").is_valid(upload(record_count=10, **{name: 11}))
    _, problems = STREAMS["upload"].validate(
        [upload(record_count=10, **{name: 10}), upload(record_count=10, **{name: 11})]
    )
    assert [(p.index, p.field) for p in problems] == [(1, name)]
    # An invalid record_count is reported alone, not again through the count that depends on it.
    _, problems = STREAMS["upload"].validate([upload(record_count=-1, **{name: 5})])
    assert [p.field for p in problems] == ["record_count"]


# --- the field types' fast paths (services.contract.models._fast_path) ----------------------
# Each must accept, convert and refuse exactly as the BeforeValidator of its Python check,
# problem text included; these are values at and past every edge of those checks.

_AWARE = datetime(2020, 4, 1, 8, 30, tzinfo=timezone(timedelta(hours=8)))
_ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    1.0,
    1.5,
    1e3,
    10_000_000,
    10_000_001,
    2**63 - 1,
    2**63,
    float(2**62),
    "5",
    "",
    b"2020-04-01",
    [],
    {},
    Decimal("12.50"),
    Decimal("1.234"),
    Decimal("-1"),
    Decimal("1E+2"),
    date(2020, 4, 1),
    _AWARE,
    _AWARE.replace(tzinfo=None),
    datetime(1899, 12, 31, tzinfo=UTC),
]
_TEXTS = [
    "2020-04-01",
    "2020-4-1",
    "2020-02-30",
    "2020-04-01\n",
    " 2020-04-01",
    "2020-04-01T08:30:00+08:00",
    "2020-04-01t08:30:00z",
    "2020-04-01T08:30:00.123456789Z",
    "2020-04-01T08:30:00.1234567890Z",
    "2020-04-01T08:30:00.Z",
    "2020-04-01T08:30+08:00",
    "2020-04-01 08:30:00+08:00",
    "2020-04-01T08:30:00+0800",
    "2020-04-01T08:30:00",
    "2020-04-01T24:00:00Z",
    "2020-13-01T00:00:00Z",
    "1899-12-31T23:59:59Z",
    "1900-01-01T00:00:00+23:59",
    "9998-12-31T23:59:59-23:59",
    "9999-01-01T00:00:00Z",
    "1585706400",
    "0",
    "12",
    "12.5",
    "12.50",
    "12.505",
    "01.00",
    "-1.00",
    "1e3",
    "NaN",
    "999999999999.99",
    "1000000000000.00",
    "٣",
    "12.50\n",
]


def _outcome(adapter: TypeAdapter[Any], value: Any) -> tuple[str, Any]:
    try:
        return "ok", adapter.validate_python(value)
    except ValidationError as exc:
        return "refused", [problem.reason for problem in field_problems(exc)]


@pytest.mark.parametrize(
    ("fast", "plain"),
    [
        (
            models.Timestamp,
            Annotated[
                AwareDatetime,
                BeforeValidator(models._require_timestamp_text),
                AfterValidator(models._require_year_range),
            ],
        ),
        (models.ContractDate, Annotated[date, BeforeValidator(models._require_date_text)]),
        (models.Amount, Annotated[Decimal, BeforeValidator(models._parse_amount)]),
        (
            models.Count,
            Annotated[int, BeforeValidator(models._json_integer), Field(ge=0, le=models.MAX_COUNT, strict=True)],
        ),
        (
            models.Balance,
            Annotated[int, BeforeValidator(models._json_integer), Field(ge=0, le=models.MAX_BALANCE, strict=True)],
        ),
    ],
    ids=["Timestamp", "ContractDate", "Amount", "Count", "Balance"],
)
def test_fast_path_types_answer_as_their_python_checks(fast: Any, plain: Any) -> None:
    fast_adapter, plain_adapter = TypeAdapter(list[fast]), TypeAdapter(list[plain])
    accepted = 0
    for value in [*_ODD_VALUES, *_TEXTS]:
        got, want = _outcome(fast_adapter, [value]), _outcome(plain_adapter, [value])
        assert got == want, value
        if want[0] == "ok":
            assert type(got[1][0]) is type(want[1][0]), value
            if isinstance(want[1][0], Decimal):
                assert str(got[1][0]) == str(want[1][0]), value  # the same scale: "12.50" stays so
            accepted += 1
    assert accepted > 0
