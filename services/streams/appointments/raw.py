"""The `appointment_events` hypertable: one COPY text line per new booking, and a row back to its event."""

from __future__ import annotations

from services.streams.appointments.model import Appointment, Channel
from services.streams.base import ORIGIN_COLUMNS, RawTable, Row
from services.streams.copytext import timestamp_text

COLUMNS = ("booked_at", "org_code", "event_id", "channel", "platform", *ORIGIN_COLUMNS)

NO_PLATFORM = ""
"""How a booking that names no platform is stored, in the raw table and the rollup's key.

Not NULL: text COPY would need `\\N`, a backslash no line may hold (services.streams.copytext),
and a key column cannot be NULL. A platform code is never empty (the contract's code pattern).
"""


def line(event: Appointment, received_at: str, partition: int, offset: int) -> str:
    """One `appointment_events` row in COLUMNS order; `received_at` is already timestamp_text."""
    return (
        f"{timestamp_text(event.booked_at)}\t{event.org_code}\t{event.event_id}\t{event.channel.value}\t"
        f"{event.platform or NO_PLATFORM}\t{received_at}\t{partition}\t{offset}\n"
    )


def event_of_row(row: Row) -> Appointment:
    """The booking a stored row was written from."""
    # model_construct: these rows were validated before they were stored.
    return Appointment.model_construct(
        event_id=row["event_id"],
        org_code=row["org_code"],
        channel=Channel(row["channel"]),
        platform=row["platform"] or None,
        booked_at=row["booked_at"],
    )


TABLE = RawTable("appointment_events", COLUMNS, line, event_of_row)
