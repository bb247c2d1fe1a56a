"""The appointments stream: `POST /v1/appointments`, one booking made (contract revision 2).

model.py (the contract), checks.py (reference data), raw.py (`appointment_events`), fold.py
(`appointment_monthly`), report.py (the appointments report).
"""

from __future__ import annotations

from datetime import datetime

from services.streams import base
from services.streams.appointments import checks, fold, raw
from services.streams.appointments.model import Appointment


def _moment(event: Appointment) -> datetime:
    return event.booked_at


STREAM = base.Stream(
    name="appointment",
    endpoint="appointments",
    model=Appointment,
    schema="appointment-event.schema.json",
    batch_schema="appointment-batch.schema.json",
    summary="Post one booking or a batch of up to 1,000",
    description=(
        '`202 {"accepted": N}` once all N bookings are acknowledged by the broker. `platform` (a booking '
        "platform's code) only with `online_12320` or `third_party`."
    ),
    example={
        "event_id": "H0002:AO20200401:00042",
        "org_code": "H0002",
        "channel": "online_12320",
        "platform": "jkn-app",
        "booked_at": "2020-04-01T08:30:00+08:00",
    },
    moment=_moment,
    raw=raw.TABLE,
    rollups=fold.ROLLUPS,
    fold=fold.fold,
    reference_problems=checks.reference_problems,
)
