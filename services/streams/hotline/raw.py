"""The `hotline_contacts` hypertable: one COPY text line per new contact, and a row back to its event."""

from __future__ import annotations

from services.streams.base import ORIGIN_COLUMNS, RawTable, Row
from services.streams.copytext import timestamp_text
from services.streams.hotline.model import ContactCategory, ContactKind, HotlineContact

COLUMNS = ("occurred_at", "org_code", "event_id", "kind", "category", *ORIGIN_COLUMNS)


def line(event: HotlineContact, received_at: str, partition: int, offset: int) -> str:
    """One `hotline_contacts` row in COLUMNS order; `received_at` is already timestamp_text."""
    return (
        f"{timestamp_text(event.occurred_at)}\t{event.org_code}\t{event.event_id}\t{event.kind.value}\t"
        f"{event.category.value}\t{received_at}\t{partition}\t{offset}\n"
    )


def event_of_row(row: Row) -> HotlineContact:
    """The contact a stored row was written from."""
    # model_construct: these rows were validated before they were stored.
    return HotlineContact.model_construct(
        event_id=row["event_id"],
        org_code=row["org_code"],
        kind=ContactKind(row["kind"]),
        category=ContactCategory(row["category"]),
        occurred_at=row["occurred_at"],
    )


TABLE = RawTable("hotline_contacts", COLUMNS, line, event_of_row)
