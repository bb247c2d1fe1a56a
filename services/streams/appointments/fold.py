"""Pure rollup arithmetic of bookings: new events → deltas of `appointment_monthly`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo

from services.streams.appointments.model import Appointment
from services.streams.appointments.raw import NO_PLATFORM
from services.streams.base import ConsumedEvent
from services.streams.rollups import Deltas, RollupTable

APPOINTMENT_MONTHLY = RollupTable(
    "appointment_monthly",
    (("org_code", "text"), ("month", "date"), ("channel", "text"), ("platform", "text")),
    (("bookings", "bigint"),),
)
"""Per institution, month of booked_at, channel and platform ('' = none named): bookings.

One table holds both of the bulletin's tables: the channels per institution, and the
platforms summed over institutions (a few hundred rows a month)."""

ROLLUPS = (APPOINTMENT_MONTHLY,)


def fold(events: Sequence[ConsumedEvent[Appointment]], zone: tzinfo, into: Deltas) -> None:
    """Add new bookings, each in the month of its `booked_at` in the platform time zone."""
    monthly = into.rows(APPOINTMENT_MONTHLY)
    for consumed in events:
        event = consumed.event
        key = (
            event.org_code,
            event.booked_at.astimezone(zone).date().replace(day=1),
            event.channel.value,
            event.platform or NO_PLATFORM,
        )
        row = monthly.get(key)
        if row is None:
            monthly[key] = [1]
        else:
            row[0] += 1
