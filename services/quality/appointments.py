"""The appointments checks, and the data the bulletin's appointments section shows.

The tables are `GET /v1/reports/appointments`'s own report (services/streams/appointments/
report.py), for the month and the month before (the problem list compares the two). What is
normal is not a problem: the booking-platform table adding up to less than the online-12320
and third-party columns is expected (hospitals' own apps and bookings that name no platform),
and every booking on those channels is checked at ingest to name a known platform or none.
What is flagged:

- `bookings_without_institution`: bookings at an institution the reference data in force does
  not have (removed after they were counted): the row has no name, nobody answers for it;
- `bookings_at_no_clinic`: bookings at a district health commission or a 12320 centre, which are
  not places where an appointment happens: most likely a relay that sent its own `org_code`;
- `bookings_stopped`: bookings last month and none this month, once the month is over (or, in a
  month still running, once the days over should have seen at least `STOPPED_EXPECTED`
  bookings at last month's pace): a booking integration that broke.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from services.contract.models import InstitutionKind
from services.quality.problems import InstitutionProblems, MonthSpan, Problem
from services.reports import fmt
from services.storage.connection import Connection
from services.streams.appointments.model import AppointmentReport, AppointmentRow
from services.streams.appointments.report import appointments_report

STOPPED_EXPECTED = 5
"""Bookings the days over must have expected at last month's pace before silence is flagged in a
running month: at 5 expected, none happens by chance about once in 150 months (Poisson)."""
_NOT_CLINICS = frozenset({InstitutionKind.DISTRICT, InstitutionKind.HOTLINE})


@dataclass(frozen=True)
class AppointmentSection:
    """The month's appointments report, the month before's, and the kinds of the institutions in them."""

    report: AppointmentReport
    before: AppointmentReport
    kinds: Mapping[str, InstitutionKind]
    """Kind of each institution with bookings in either month that the reference data has."""


def previous_month(month: date) -> date:
    """First day of the month before `month`."""
    return (month.replace(day=1) - timedelta(days=1)).replace(day=1)


async def load_appointment_section(conn: Connection, month: date, org_code: str | None) -> AppointmentSection:
    """Both months' reports as `org_code` (None: every institution) may see them, in the caller's snapshot."""
    report = await appointments_report(conn, month, org_code)
    before = await appointments_report(conn, previous_month(month), org_code)
    orgs = sorted({r.org_code for r in (*report.rows, *before.rows)})
    rows = await conn.fetch("SELECT org_code, kind FROM cur_institutions WHERE org_code = ANY($1::text[])", orgs)
    return AppointmentSection(report, before, {r["org_code"]: InstitutionKind(r["kind"]) for r in rows})


def appointment_problems(section: AppointmentSection, span: MonthSpan) -> list[InstitutionProblems]:
    """The institutions with something to flag in the appointments section, in the report's order."""
    found: dict[str, tuple[str, list[Problem]]] = {}
    for row in section.report.rows:
        problems = found.setdefault(row.org_code, (_name(row), []))[1]
        kind = section.kinds.get(row.org_code)
        if row.name is None:
            problems.append(
                Problem(
                    "bookings_without_institution",
                    f"本月预约 {fmt.integer(row.subtotal)} 次，参考数据中无此单位",
                    figures={"bookings": row.subtotal},
                )
            )
        elif kind in _NOT_CLINICS:
            what = "区卫生健康委" if kind is InstitutionKind.DISTRICT else "12320热线中心"
            problems.append(
                Problem(
                    "bookings_at_no_clinic",
                    f"{what}名下预约 {fmt.integer(row.subtotal)} 次",
                    figures={"bookings": row.subtotal, "kind": kind.value if kind is not None else None},
                )
            )
    now = {row.org_code for row in section.report.rows}
    for row in section.before.rows:
        if row.org_code in now or not _silence_is_telling(row.subtotal, span):
            continue
        over = "本月" if len(span.ended) == span.days_in_month else f"本月已过 {len(span.ended)} 天"
        found.setdefault(row.org_code, (_name(row), []))[1].append(
            Problem(
                "bookings_stopped",
                f"上月预约 {fmt.integer(row.subtotal)} 次，{over}无预约",
                figures={"bookings_last_month": row.subtotal, "days_over": len(span.ended)},
            )
        )
    return [
        InstitutionProblems(org, name, section.kinds.get(org), tuple(problems))
        for org, (name, problems) in found.items()
        if problems
    ]


def _name(row: AppointmentRow) -> str:
    return row.name if row.name is not None else f"{row.org_code}（参考数据中无此单位）"


def _silence_is_telling(bookings_before: int, span: MonthSpan) -> bool:
    if not span.ended:
        return False
    if len(span.ended) == span.days_in_month:
        return True
    days_before = (span.first - previous_month(span.first)).days
    return bookings_before * len(span.ended) / days_before >= STOPPED_EXPECTED
