"""An institution's page as HTML, from its month (pure: no I/O, `now` given)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup

from services.bulletin.render import KIND_NAMES
from services.pages.heatmap import calendar_svg, legend
from services.pages.month import InstitutionMonth
from services.pages.render import render
from services.pages.sessions import Session
from services.quality.problems import Severity, month_span
from services.quality.report import QualityRow, quality_report_of
from services.quality.settings import Thresholds
from services.reports.common import next_month
from services.streams import STREAMS
from services.streams.remote_uploads.wording import PLATFORM_NAMES


@dataclass(frozen=True, slots=True)
class Calendar:
    """One channel's heatmap, its heading and the month's records of it."""

    title: str
    svg: Markup
    total: int


@dataclass(frozen=True, slots=True)
class DayRow:
    """A row of the table beside the heatmaps: a day and its records per channel."""

    day: date
    values: tuple[int, ...]


SEVERITY_NAMES = {Severity.PROBLEM: "问题 Problem", Severity.WARNING: "提示 Warning"}


@dataclass(frozen=True, slots=True)
class CheckView:
    """A finding of the checks as the page lists it: the report row and its figures as text."""

    row: QualityRow
    figures: tuple[tuple[str, str], ...]


def figure_text(value: object) -> str:
    """A figure of a finding as the page prints it: JSON's spelling (null, lists), Chinese unescaped."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def institution_checks(
    page: InstitutionMonth, now: datetime, zone: ZoneInfo, thresholds: Thresholds
) -> list[CheckView]:
    """The institution's findings, as `GET /v1/reports/quality` gives them to its own token."""
    report = quality_report_of(page.quality, now, zone, thresholds)
    return [
        CheckView(row, tuple((name, figure_text(value)) for name, value in row.figures.items()))
        for row in report.rows
        # The month is read for this institution only; the filter keeps it so if that ever changes.
        if row.org_code == page.institution.org_code
    ]


def institution_html(
    page: InstitutionMonth,
    *,
    session: Session | None,
    now: datetime,
    zone: ZoneInfo,
    self_url: str,
    thresholds: Thresholds,
) -> str:
    """The page of `page`'s institution and month; days after `now` (platform zone) are not over yet;
    the checks judge it by `thresholds` (the quality report's)."""
    first = page.month
    span = month_span(first, now, zone)
    channels = (
        ("实时 Real-time", {day: pair.realtime for day, pair in page.channel_days.items()}),
        ("定时 Scheduled", {day: pair.scheduled for day, pair in page.channel_days.items()}),
    )
    busiest = max((value for _, values in channels for value in values.values()), default=0)
    calendars = [
        Calendar(
            title,
            calendar_svg(f"{first.year}年{first.month}月 {title} 每日记录数", span, values, busiest),
            sum(values.values()),
        )
        for title, values in channels
    ]
    return render(
        "institution.html.j2",
        title=page.institution.name,
        session=session,
        page=page,
        kind_names=KIND_NAMES,
        platform_names=PLATFORM_NAMES,
        calendars=calendars,
        legend=legend(busiest),
        day_rows=[DayRow(day, tuple(values.get(day, 0) for _, values in channels)) for day in span.days],
        month_text=f"{first:%Y-%m}",
        month_label=f"{first.year}年{first.month}月",
        month_over=len(span.ended) == span.days_in_month,
        previous_month=f"{(first - timedelta(days=1)).replace(day=1):%Y-%m}",
        next_month=f"{next_month(first):%Y-%m}",
        self_url=self_url,
        endpoints=[stream.endpoint for stream in STREAMS.values()],
        checks=institution_checks(page, now, zone, thresholds),
        severity_names=SEVERITY_NAMES,
        days_over=len(span.ended),
    )
