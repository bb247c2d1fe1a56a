"""COPY text rows of the raw event tables: exact values, and nothing that would need escaping."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from services.contract.models import _CODE_PATTERN
from services.streams.copytext import COPY_SPECIAL, timestamp_text
from services.streams.kiosk.model import KioskTransaction
from services.streams.kiosk.raw import COLUMNS as KIOSK_COLUMNS
from services.streams.kiosk.raw import line as kiosk_line
from services.streams.uploads.model import UploadEvent
from services.streams.uploads.raw import COLUMNS as UPLOAD_COLUMNS
from services.streams.uploads.raw import line as upload_line

_PLUS8 = timezone(timedelta(hours=8))


def _fields(line: str) -> list[str]:
    assert line.endswith("\n") and line.count("\n") == 1
    return line[:-1].split("\t")


def test_kiosk_line_keeps_every_value_exactly() -> None:
    event = KioskTransaction.model_validate(
        {
            "event_id": "K.1:a-b_c",
            "org_code": "H0001",
            "kiosk_id": "K01",
            "kind": "payment",
            "amount": "12.50",
            "occurred_at": "2020-04-01T08:30:00.123456+08:00",
        }
    )
    fields = dict(zip(KIOSK_COLUMNS, _fields(kiosk_line(event, "R", 3, 42)), strict=True))
    assert datetime.fromisoformat(fields["occurred_at"]) == datetime(2020, 4, 1, 0, 30, 0, 123456, tzinfo=UTC)
    assert fields["amount"] == "12.50"
    assert Decimal(fields["amount"]) == event.amount
    assert (fields["org_code"], fields["event_id"], fields["kiosk_id"], fields["kind"]) == (
        "H0001",
        "K.1:a-b_c",
        "K01",
        "payment",
    )
    assert (fields["received_at"], fields["kafka_partition"], fields["kafka_offset"]) == ("R", "3", "42")


@pytest.mark.parametrize("amount", ["0", "0.5", "100000000000.25", "999999999999.99"])
def test_amount_is_written_without_exponent(amount: str) -> None:
    event = KioskTransaction.model_validate(
        {
            "event_id": "e",
            "org_code": "o",
            "kiosk_id": "k",
            "kind": "registration",
            "amount": amount,
            "occurred_at": "2020-04-01T08:30:00Z",
        }
    )
    written = dict(zip(KIOSK_COLUMNS, _fields(kiosk_line(event, "R", 0, 0)), strict=True))["amount"]
    assert "E" not in written.upper()
    assert Decimal(written) == Decimal(amount)


def test_upload_line_keeps_every_value_exactly() -> None:
    event = UploadEvent.model_validate(
        {
            "event_id": "U1",
            "org_code": "H0001",
            "table_code": "T_OUT",
            "mode": "scheduled",
            "business_date": "2020-03-31",
            "uploaded_at": "2020-04-01T01:02:03+08:00",
            "record_count": 7.0,
        }
    )
    fields = dict(zip(UPLOAD_COLUMNS, _fields(upload_line(event, "R", 1, 2)), strict=True))
    assert datetime.fromisoformat(fields["uploaded_at"]) == datetime(2020, 4, 1, 1, 2, 3, tzinfo=_PLUS8)
    assert date.fromisoformat(fields["business_date"]) == date(2020, 3, 31)
    assert (fields["mode"], fields["record_count"], fields["document_count"]) == ("scheduled", "7", "0")


def test_timestamp_text_keeps_the_instant_to_the_microsecond() -> None:
    moment = datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=_PLUS8)
    assert datetime.fromisoformat(timestamp_text(moment)) == moment
    assert timestamp_text(moment) == "1999-12-31T15:59:59.999999+00:00"


@pytest.mark.parametrize("offset", ["+23:59", "-23:59", "+16:00", "-15:59"])
def test_timestamps_with_any_contract_offset_are_written_in_a_range_postgresql_reads(offset: str) -> None:
    # PostgreSQL refuses a timestamptz displacement beyond ±15:59; the contract allows ±23:59.
    event = KioskTransaction.model_validate(
        {
            "event_id": "e",
            "org_code": "o",
            "kiosk_id": "k",
            "kind": "payment",
            "amount": "1",
            "occurred_at": f"2020-04-01T08:30:00{offset}",
        }
    )
    written = dict(zip(KIOSK_COLUMNS, _fields(kiosk_line(event, "R", 0, 0)), strict=True))["occurred_at"]
    assert written.endswith("+00:00")
    assert datetime.fromisoformat(written) == event.occurred_at


@pytest.mark.parametrize("where", ["a{}b", "ab{}", "{}ab"])
@pytest.mark.parametrize("char", sorted(COPY_SPECIAL))
def test_contract_codes_never_hold_a_copy_special_character(char: str, where: str) -> None:
    # The lines are written without escaping because the code pattern refuses these
    # (also a trailing newline, which a `$` in some regex dialects lets through).
    code = where.format(char)
    assert re.fullmatch(_CODE_PATTERN, code) is None
    with pytest.raises(ValueError):
        KioskTransaction.model_validate(
            {
                "event_id": code,
                "org_code": "o",
                "kiosk_id": "k",
                "kind": "payment",
                "amount": "1",
                "occurred_at": "2020-04-01T08:30:00Z",
            }
        )
