"""The `upload_events` hypertable: one COPY text line per new upload, and a stored row back to its event."""

from __future__ import annotations

from services.streams.base import ORIGIN_COLUMNS, RawTable, Row
from services.streams.copytext import timestamp_text
from services.streams.uploads.model import Mode, UploadEvent

COLUMNS = (
    "uploaded_at",
    "org_code",
    "event_id",
    "table_code",
    "mode",
    "business_date",
    "record_count",
    "document_count",
    "incomplete_records",
    "nonconforming_records",
    "unlinked_records",
    *ORIGIN_COLUMNS,
)


def line(event: UploadEvent, received_at: str, partition: int, offset: int) -> str:
    """One `upload_events` row in COLUMNS order; `received_at` is already timestamp_text."""
    return (
        f"{timestamp_text(event.uploaded_at)}\t{event.org_code}\t{event.event_id}\t{event.table_code}\t"
        f"{event.mode.value}\t{event.business_date.isoformat()}\t{event.record_count}\t{event.document_count}\t"
        f"{event.incomplete_records}\t{event.nonconforming_records}\t{event.unlinked_records}\t"
        f"{received_at}\t{partition}\t{offset}\n"
    )


def event_of_row(row: Row) -> UploadEvent:
    """The upload a stored row was written from."""
    # model_construct: these rows were validated before they were stored.
    return UploadEvent.model_construct(
        event_id=row["event_id"],
        org_code=row["org_code"],
        table_code=row["table_code"],
        mode=Mode(row["mode"]),
        business_date=row["business_date"],
        uploaded_at=row["uploaded_at"],
        record_count=row["record_count"],
        document_count=row["document_count"],
        incomplete_records=row["incomplete_records"],
        nonconforming_records=row["nonconforming_records"],
        unlinked_records=row["unlinked_records"],
    )


TABLE = RawTable("upload_events", COLUMNS, line, event_of_row)
