"""`GET /v1/reports/quality`: every finding of `run_checks` for a month, one row per institution and check.

The rows are the bulletin's problem lists as data: the same findings, from the same snapshot
loader, in the same order (institutions in the upload report's order, then the other streams';
checks in the catalogue's order). `cross_stream` adds every comparison of two streams, agreeing
or not, so a reader sees the figures that were checked and not only the ones that failed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from services.quality.checks import run_checks, span_of
from services.quality.cross_stream import CrossStreamFigure, cross_stream_figures
from services.quality.month import QualityMonth, load_quality_month
from services.quality.problems import CHECKS, InstitutionProblems, Severity
from services.quality.settings import Thresholds
from services.storage.connection import Connection


class QualityRow(BaseModel):
    """One finding: an institution, a check, and what it found."""

    model_config = ConfigDict(frozen=True)

    org_code: str
    name: str
    kind: str | None
    """The institution's kind; null for one the reference data does not have."""
    check: str
    severity: Severity
    title: str
    """What the check looks for (Chinese); `title_en` in English."""
    title_en: str
    detail: str
    """One sentence with the figure that shows the problem."""
    items: list[str]
    """What the sentence counts, one by one (tables, days, the other institutions)."""
    figures: dict[str, Any]
    """The numbers behind the sentence."""


class CheckDefinition(BaseModel):
    """A check of the catalogue."""

    model_config = ConfigDict(frozen=True)

    check: str
    severity: Severity
    title: str
    title_en: str


class QualityReport(BaseModel):
    """`GET /v1/reports/quality?month=YYYY-MM`."""

    model_config = ConfigDict(frozen=True)

    month: str
    days_over: int
    """Days of the month over when the checks ran (platform time zone): a running month is checked so far."""
    rows: list[QualityRow]
    cross_stream: list[CrossStreamFigure]
    """Empty for an institution's token (its view has no other institution to compare with)."""
    checks: list[CheckDefinition]
    """Every check the platform runs, found or not."""


def rows_of(found: list[InstitutionProblems]) -> list[QualityRow]:
    """The findings as report rows, institution by institution."""
    return [
        QualityRow(
            org_code=inst.org_code,
            name=inst.name,
            kind=inst.kind.value if inst.kind is not None else None,
            check=p.check,
            severity=p.severity,
            title=p.title,
            title_en=p.title_en,
            detail=p.figure,
            items=list(p.items),
            figures=dict(p.figures),
        )
        for inst in found
        for p in inst.problems
    ]


def quality_report_of(data: QualityMonth, now: datetime, zone: ZoneInfo, thresholds: Thresholds) -> QualityReport:
    """The report of a month already read (pure)."""
    span = span_of(data, now, zone)
    found = run_checks(data, span, thresholds)
    comparisons = []
    if data.org_code is None and data.hotline is not None and data.appointments is not None:
        comparisons = cross_stream_figures(
            data.hotline.report, data.appointments.report, data.cities, thresholds.cross_stream_tolerance
        )
    return QualityReport(
        month=data.month.strftime("%Y-%m"),
        days_over=len(span.ended),
        rows=rows_of(found),
        cross_stream=comparisons,
        checks=[
            CheckDefinition(check=c, severity=i.severity, title=i.title, title_en=i.title_en) for c, i in CHECKS.items()
        ],
    )


async def quality_report(
    conn: Connection,
    month: date,
    org_code: str | None,
    *,
    zone: ZoneInfo,
    thresholds: Thresholds,
    now: datetime | None = None,
) -> QualityReport:
    """Read `month` as `org_code` (None: the admin) may see it and run every check on it."""
    data = await load_quality_month(conn, month, org_code)
    return quality_report_of(data, now or datetime.now(zone), zone, thresholds)
