"""`run_checks`: every data-quality check of a month, once, for every reader.

The quality report (`GET /v1/reports/quality`), the bulletin's problem lists, the scorecard and
the command line all call this one function on a `QualityMonth`; each check's logic lives in its
module (uploads.py, identical.py, trends.py, hotline.py, appointments.py, remote.py,
cross_stream.py) and its code, severity and titles in problems.py's catalogue.

Checks that compare institutions (identical figures, the hotline against its city's bookings)
only see the rows the reader sees, so an institution's own list never names another institution
and never compares its figures with rows it cannot read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from services.quality.appointments import appointment_problems
from services.quality.cross_stream import cross_stream_figures, cross_stream_problems
from services.quality.hotline import hotline_problems
from services.quality.identical import identical_appointment_rows, identical_hotline_rows, identical_kiosk_rows
from services.quality.month import QualityMonth
from services.quality.problems import InstitutionProblems, MonthSpan, Problem, month_span, with_problems
from services.quality.remote import remote_problems
from services.quality.settings import Thresholds
from services.quality.trends import volume_outliers
from services.quality.uploads import find_problems


def span_of(data: QualityMonth, now: datetime, zone: ZoneInfo) -> MonthSpan:
    """The month's days, those over by `now`, and the reference data's days without expected uploads."""
    return month_span(data.month, now, zone, data.no_upload_days)


def _attach(found: list[InstitutionProblems], more: Mapping[str, list[Problem]]) -> list[InstitutionProblems]:
    """`more` (org_code -> problems) added to the institutions already listed, names from their rows."""
    known = {inst.org_code: inst for inst in found}
    extra = [
        InstitutionProblems(org, known[org].name, known[org].kind, tuple(problems))
        for org, problems in more.items()
        if org in known
    ]
    return with_problems(found, extra)


def run_checks(data: QualityMonth, span: MonthSpan, thresholds: Thresholds) -> list[InstitutionProblems]:
    """Every institution the reader sees, in the upload report's order then the other streams', with its problems."""
    uploads = [*data.districts, *data.hospitals]
    found = find_problems(
        uploads, data.kiosks, data.details, data.table_names, span, thresholds.conformance_threshold,
        thresholds.flatline_days,
    )  # fmt: skip
    found = _attach(
        found,
        volume_outliers(
            uploads, data.kiosks, data.records_before, data.transactions_before, span, thresholds.outlier_share
        ),
    )
    found = _attach(found, identical_kiosk_rows(data.kiosks))
    found = with_problems(found, hotline_problems(data.hotline, span))
    if data.hotline is not None:
        found = _attach(found, identical_hotline_rows(data.hotline.report.rows))
    if data.appointments is not None:
        found = with_problems(found, appointment_problems(data.appointments, span))
        found = _attach(found, identical_appointment_rows(data.appointments.report.rows))
    if data.remote is not None:
        found = with_problems(found, remote_problems(data.remote))
    if data.org_code is None and data.hotline is not None and data.appointments is not None:
        figures = cross_stream_figures(
            data.hotline.report, data.appointments.report, data.cities, thresholds.cross_stream_tolerance
        )
        found = with_problems(found, cross_stream_problems(figures, thresholds.cross_stream_tolerance))
    return found
