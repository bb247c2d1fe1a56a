"""The `kiosk_transactions` hypertable: one COPY text line per new transaction, and a row back to its event."""

from __future__ import annotations

from services.streams.base import ORIGIN_COLUMNS, RawTable, Row
from services.streams.copytext import timestamp_text
from services.streams.kiosk.model import KioskKind, KioskTransaction

COLUMNS = ("occurred_at", "org_code", "event_id", "kiosk_id", "kind", "amount", *ORIGIN_COLUMNS)


def line(event: KioskTransaction, received_at: str, partition: int, offset: int) -> str:
    """One `kiosk_transactions` row in COLUMNS order; `received_at` is already timestamp_text."""
    # format(Decimal, "f") never writes an exponent, which numeric's text input would also
    # take, but "f" keeps the value's own scale ("12.50") exactly as validated.
    return (
        f"{timestamp_text(event.occurred_at)}\t{event.org_code}\t{event.event_id}\t{event.kiosk_id}\t"
        f"{event.kind.value}\t{event.amount:f}\t{received_at}\t{partition}\t{offset}\n"
    )


def event_of_row(row: Row) -> KioskTransaction:
    """The transaction a stored row was written from."""
    # model_construct: these rows were validated before they were stored.
    return KioskTransaction.model_construct(
        event_id=row["event_id"],
        org_code=row["org_code"],
        kiosk_id=row["kiosk_id"],
        kind=KioskKind(row["kind"]),
        amount=row["amount"],
        occurred_at=row["occurred_at"],
    )


TABLE = RawTable("kiosk_transactions", COLUMNS, line, event_of_row)
