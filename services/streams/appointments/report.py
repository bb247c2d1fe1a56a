"""The appointments report: the month's bookings per institution and per platform (pure), and its query.

`appointment_report` holds the contract's figures once ("Monthly figures of the new streams",
Appointments); `appointments_report` reads the month's rollup rows and the reference data in
one snapshot and hands them to it. The aggregator's route, the bulletin and the command line
all call `appointments_report`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from services.contract.models import BalanceMetric
from services.storage.connection import Connection
from services.storage.refdata import OpeningBalance, balance_for
from services.streams.appointments.model import (
    AppointmentReport,
    AppointmentRow,
    AppointmentTotal,
    BookingPlatformRow,
    Channel,
)
from services.streams.appointments.raw import NO_PLATFORM


@dataclass(frozen=True, slots=True)
class Bookings:
    """Bookings of one institution on one channel naming one platform ('' = none), in one month."""

    org_code: str
    channel: str
    platform: str
    bookings: int


def appointment_report(
    month: date,
    bookings: Iterable[Bookings],
    institution_names: Mapping[str, str],
    platforms: Sequence[tuple[str, str]],
    cumulative: int | None,
) -> AppointmentReport:
    """The month's report from its bookings.

    `institution_names` and `platforms` ((platform_code, name) pairs) are the reference data in
    force; an institution or platform it does not have keeps its bookings, with name None.
    Rows: institutions with bookings, most first (the bulletin's order), ties by org_code.
    Platforms: every one of the reference data and any other a booking names, most first.
    """
    by_org: dict[str, dict[str, int]] = {}
    by_platform: dict[str, int] = {code: 0 for code, _ in platforms}
    for b in bookings:
        channels = by_org.setdefault(b.org_code, dict.fromkeys(Channel, 0))
        channels[b.channel] += b.bookings
        if b.platform != NO_PLATFORM:
            by_platform[b.platform] = by_platform.get(b.platform, 0) + b.bookings
    rows = [
        AppointmentRow(
            org_code=org,
            name=institution_names.get(org),
            online_12320=n[Channel.ONLINE_12320],
            phone=n[Channel.PHONE],
            in_clinic=n[Channel.IN_CLINIC],
            third_party=n[Channel.THIRD_PARTY],
            subtotal=sum(n.values()),
        )
        for org, n in by_org.items()
    ]
    rows.sort(key=lambda r: (-r.subtotal, r.org_code))
    names = dict(platforms)
    platform_rows = [
        BookingPlatformRow(platform_code=code, name=names.get(code), appointments=n) for code, n in by_platform.items()
    ]
    platform_rows.sort(key=lambda r: (-r.appointments, r.platform_code))
    return AppointmentReport(
        month=f"{month:%Y-%m}",
        rows=rows,
        total=AppointmentTotal(
            online_12320=sum(r.online_12320 for r in rows),
            phone=sum(r.phone for r in rows),
            in_clinic=sum(r.in_clinic for r in rows),
            third_party=sum(r.third_party for r in rows),
            subtotal=sum(r.subtotal for r in rows),
        ),
        appointments_cumulative=cumulative,
        platforms=platform_rows,
        platforms_total=sum(r.appointments for r in platform_rows),
    )


def cumulative_bookings(balance: OpeningBalance | None, monthly_totals: Mapping[date, int], month: date) -> int | None:
    """Bookings to the end of `month`: the balance (everything before its `as_of`) plus the
    bookings of the months `as_of` … `month`; None without a balance (the figure is unknown)."""
    if balance is None:
        return None
    return balance.value + sum(n for m, n in monthly_totals.items() if balance.as_of <= m <= month)


async def appointments_report(conn: Connection, month: date, org_code: str | None) -> AppointmentReport:
    """`GET /v1/reports/appointments`: every institution (or only `org_code`'s rows and totals)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(
            """SELECT org_code, channel, platform, bookings FROM appointment_monthly
               WHERE month = $1 AND ($2::text IS NULL OR org_code = $2)""",
            month,
            org_code,
        )
        bookings = [Bookings(r["org_code"], r["channel"], r["platform"], r["bookings"]) for r in rows]
        names = await conn.fetch(
            "SELECT org_code, name FROM cur_institutions WHERE org_code = ANY($1::text[])",
            sorted({b.org_code for b in bookings}),
        )
        platforms = await conn.fetch("SELECT platform_code, name FROM cur_booking_platforms ORDER BY platform_code")
        cumulative = None
        # The cumulative figure is the city's (all institutions, with a balance that is not any
        # one institution's): an institution's token sees the totals of its own rows only.
        if org_code is None:
            cumulative = await _cumulative(conn, month)
    return appointment_report(
        month,
        bookings,
        {r["org_code"]: r["name"] for r in names},
        [(r["platform_code"], r["name"]) for r in platforms],
        cumulative,
    )


async def _cumulative(conn: Connection, month: date) -> int | None:
    balances = await conn.fetch(
        "SELECT as_of, value FROM cur_opening_balances WHERE metric = $1", BalanceMetric.APPOINTMENTS.value
    )
    balance = balance_for([OpeningBalance(r["as_of"], r["value"]) for r in balances], month)
    if balance is None:
        return None
    totals = await conn.fetch(
        """SELECT month, sum(bookings)::bigint AS bookings FROM appointment_monthly
           WHERE month >= $1 AND month <= $2 GROUP BY month""",
        balance.as_of,
        month,
    )
    return cumulative_bookings(balance, {r["month"]: r["bookings"] for r in totals}, month)
