"""`cross_stream_mismatch`: a 12320 centre's `appointment` calls against the `phone` bookings of its city.

Every booking made on the 12320 phone line is one call of category `appointment` at the centre
and one `phone` booking at the hospital where the appointment is, reported by two different
systems: the April 2020 bulletin's 81,506 phone appointments are both the hotline's figure and
the appointments table's phone column. A centre is compared only when its city's institutions
have bookings on the platform this month: a centre of another city (the province table) relays
its calls, while that city's hospitals report their bookings elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from services.contract.models import InstitutionKind
from services.quality.problems import InstitutionProblems, Problem
from services.reports import fmt
from services.streams.appointments.model import AppointmentReport
from services.streams.hotline.model import HotlineReport

CROSS_STREAM_TOLERANCE = 0.01
"""Share of the larger figure the two may differ by (a booking at 23:59 on the last day can be
counted by the hotline in one month and by the hospital in the next)."""


class CrossStreamFigure(BaseModel):
    """One comparison, agreeing or not: a centre's appointment calls and its city's phone bookings
    (a row of the quality report's `cross_stream`)."""

    model_config = ConfigDict(frozen=True)

    org_code: str
    name: str
    city: str
    appointment_calls: int
    """The 12320 centre's calls of category `appointment`."""
    phone_bookings: int
    """The `phone` bookings of its city's institutions."""
    institutions: int
    """Institutions of the city with bookings this month."""
    agrees: bool


def cross_stream_figures(
    hotline: HotlineReport,
    appointments: AppointmentReport,
    cities: Mapping[str, str | None],
    tolerance: float = CROSS_STREAM_TOLERANCE,
) -> list[CrossStreamFigure]:
    """Every centre whose city has bookings this month, with both figures."""
    phone: dict[str, int] = {}
    booking: dict[str, int] = {}
    for row in appointments.rows:
        city = cities.get(row.org_code)
        if city is not None and row.subtotal > 0:
            phone[city] = phone.get(city, 0) + row.phone
            booking[city] = booking.get(city, 0) + 1
    out = []
    for centre in hotline.rows:
        if centre.org_code is None or centre.city is None or centre.city not in booking:
            continue
        calls, bookings = centre.appointment, phone[centre.city]
        agrees = abs(calls - bookings) <= tolerance * max(calls, bookings)
        out.append(
            CrossStreamFigure(
                org_code=centre.org_code,
                name=centre.name,
                city=centre.city,
                appointment_calls=calls,
                phone_bookings=bookings,
                institutions=booking[centre.city],
                agrees=agrees,
            )
        )
    return out


def cross_stream_problems(figures: list[CrossStreamFigure], tolerance: float) -> list[InstitutionProblems]:
    """The centres whose figures disagree, each with its problem."""
    out = []
    for f in figures:
        if f.agrees:
            continue
        problem = Problem(
            "cross_stream_mismatch",
            f"电话预约 {fmt.integer(f.appointment_calls)} 个，{f.city}各医疗机构电话预约 "
            f"{fmt.integer(f.phone_bookings)} 次（相差 {fmt.integer(f.appointment_calls - f.phone_bookings)}）",
            (),
            {
                "city": f.city,
                "appointment_calls": f.appointment_calls,
                "phone_bookings": f.phone_bookings,
                "difference": f.appointment_calls - f.phone_bookings,
                "institutions": f.institutions,
                "tolerance": tolerance,
            },
        )
        out.append(InstitutionProblems(f.org_code, f.name, InstitutionKind.HOTLINE, (problem,)))
    return out
