"""Rows of the raw event tables as PostgreSQL COPY text, built from validated events.

asyncpg's binary COPY (`copy_records_to_table`) encodes every value in its own codec call
(timestamptz, numeric and text): measured at ~9 µs of the aggregator's CPU per kiosk event,
the largest single cost of applying a batch. One formatted line per event costs a fraction of
that, and PostgreSQL parses the text form at about the same cost as the binary one.

Text COPY gives a meaning to backslash, tab, newline and carriage return. The contract's code
and event_id pattern (`services.contract.models._CODE_PATTERN`) admits none of them, and every
other column is a number, a date, a timestamp or an enum value written here, so no value needs
escaping; tests/unit/test_copyrows.py fails if the pattern ever admits one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.contract.models import KioskTransaction, UploadEvent

UPLOAD_COLUMNS = (
    "uploaded_at",
    "org_code",
    "event_id",
    "table_code",
    "mode",
    "business_date",
    "record_count",
    "document_count",
    "received_at",
    "kafka_partition",
    "kafka_offset",
)
KIOSK_COLUMNS = (
    "occurred_at",
    "org_code",
    "event_id",
    "kiosk_id",
    "kind",
    "amount",
    "received_at",
    "kafka_partition",
    "kafka_offset",
)

# Characters text COPY interprets; no value written by this module may contain one.
COPY_SPECIAL = frozenset("\\\t\n\r")


def timestamp_text(moment: datetime) -> str:
    """An aware datetime as PostgreSQL reads it back exactly: the same instant, to the microsecond.

    Written in UTC: the contract admits any offset up to ±23:59, PostgreSQL's timestamptz input
    only up to ±15:59, and the instant is what is stored either way.
    """
    return moment.astimezone(UTC).isoformat()


def upload_line(event: UploadEvent, received_at: str, partition: int, offset: int) -> str:
    """One `upload_events` row in UPLOAD_COLUMNS order; `received_at` is already timestamp_text."""
    return (
        f"{timestamp_text(event.uploaded_at)}\t{event.org_code}\t{event.event_id}\t{event.table_code}\t"
        f"{event.mode.value}\t{event.business_date.isoformat()}\t{event.record_count}\t{event.document_count}\t"
        f"{received_at}\t{partition}\t{offset}\n"
    )


def kiosk_line(event: KioskTransaction, received_at: str, partition: int, offset: int) -> str:
    """One `kiosk_transactions` row in KIOSK_COLUMNS order; `received_at` is already timestamp_text."""
    # format(Decimal, "f") never writes an exponent, which numeric's text input would also
    # take, but "f" keeps the value's own scale ("12.50") exactly as validated.
    return (
        f"{timestamp_text(event.occurred_at)}\t{event.org_code}\t{event.event_id}\t{event.kiosk_id}\t"
        f"{event.kind.value}\t{event.amount:f}\t{received_at}\t{partition}\t{offset}\n"
    )
