"""The bulletin's appointments section: its chart (its data and problems: services/quality/appointments.py).

The tables are `GET /v1/reports/appointments`'s own report (services/streams/appointments/
report.py), for the month and the month before.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

from services.bulletin import charts
from services.reports import fmt
from services.streams.appointments.model import AppointmentRow

CHANNEL_NAMES = ("12320在线预约", "电话预约", "诊间预约", "第三方")
"""The channel columns' headings, in the report's order (online_12320, phone, in_clinic, third_party)."""


def channel_mix_chart(rows: Sequence[AppointmentRow]) -> Markup:
    """Each institution's bookings split by channel, most bookings first."""
    return charts.share_chart(
        [
            charts.Mix(
                fmt.chart_label(r.name or r.org_code),
                (r.online_12320, r.phone, r.in_clinic, r.third_party),
                fmt.integer(r.subtotal),
            )
            for r in rows
        ],
        CHANNEL_NAMES,
        "预约途径构成（各单位）",
    )
