"""The bulletin as one self-contained HTML page: embedded CSS, inline SVG, no script, no outside resource.

The page follows the printed bulletin: the 12320 hotline (sections/hotline.html.j2, from
bulletin/hotline.py), the appointment tables 预约挂号服务统计表 and 分途径预约情况统计
(sections/appointments.html.j2), the remote-medicine platforms, 数据采集情况（区）,
数据采集情况（医院）and the kiosk table 自助智能医疗服务终端使用情况表, in that order and with
their columns in the printed order (the
hospital table in its consistent reading, see the reference NOTES), then the charts that only a
stream can draw and each institution's problem list. Jinja2 autoescapes every value, so an
institution's name can never inject markup; a Content-Security-Policy in the page forbids any load.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from services.bulletin import charts
from services.bulletin.appointments import channel_mix_chart
from services.bulletin.hotline import hotline_view
from services.bulletin.remote_platforms import remote_section
from services.contract.models import InstitutionKind
from services.quality.checks import run_checks, span_of
from services.quality.month import QualityMonth
from services.quality.problems import (
    KIND_LABELS,
    InstitutionDetail,
    InstitutionProblems,
    MonthSpan,
    ProblemKind,
    problem_counts,
)
from services.quality.settings import Thresholds
from services.reports import fmt
from services.reports.cutoff import Cutoff, CutoffKind
from services.reports.restatements import MonthRestatements
from services.streams.kiosk.model import KioskReportRow
from services.streams.uploads.model import UploadReportRow

KIND_NAMES = {
    InstitutionKind.DISTRICT: "区",
    InstitutionKind.HOSPITAL: "医院",
    InstitutionKind.HOTLINE: "12320热线",
    InstitutionKind.OTHER: "其他机构",
    None: "参考数据中无此单位",
}


@functools.cache
def environment(package: str = "services.bulletin") -> jinja2.Environment:
    """The autoescaping environment of `package`'s `templates/` folder, with the bulletin's number filters.

    The institution pages (services/pages/) use it too, so both write figures the same way.
    """
    # Built once per process and package: it holds only the template cache, nothing tied to a
    # loop or a request.
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["integer"] = fmt.integer
    env.filters["amount"] = fmt.amount
    env.filters["rate"] = fmt.rate
    env.filters["declared"] = fmt.declared
    return env


def render_html(
    data: QualityMonth,
    *,
    now: datetime,
    zone: ZoneInfo,
    conformance_threshold: float,
    thresholds: Thresholds | None = None,
    cutoff: Cutoff | None = None,
    restatements: Sequence[MonthRestatements] = (),
) -> str:
    """The whole page for `data`; `now` (aware) decides which days of the month are over.

    The problem lists are `run_checks`'s, the same findings as `GET /v1/reports/quality`;
    `thresholds` default to the contract's, with `conformance_threshold`. `cutoff`: which
    figures `data` holds (printed in the masthead; live at `now` if None); `restatements`:
    earlier closed months' changed cells, listed in a short section.
    """
    cutoff = cutoff or Cutoff(CutoffKind.LIVE, now)
    span = span_of(data, now, zone)
    found = run_checks(data, span, thresholds or Thresholds(conformance_threshold=conformance_threshold))
    month_label = f"{data.month.year}年{data.month.month}月"
    scope = "全部接入单位 all institutions"
    if data.org_code is not None:
        own = next((r.name for r in found if r.org_code == data.org_code), data.org_code)
        scope = f"{own}（{data.org_code}）"
    counts = problem_counts(found)
    return (
        environment()
        .get_template("bulletin.html.j2")
        .render(
            title=f"{month_label}卫生信息平台数据采集情况与数据质量通报",
            month_label=month_label,
            month_code=f"{data.month:%Y-%m}",
            generated_at=f"{now.astimezone(zone):%Y-%m-%d %H:%M} ({zone.key})",
            scope=scope,
            threshold=conformance_threshold,
            districts=data.districts,
            hospitals=data.hospitals,
            kiosk_hospitals=[r for r in data.kiosks if r.group == "hospital"],
            kiosk_districts=[r for r in data.kiosks if r.group == "district"],
            kiosk_total=next((r for r in data.kiosks if r.group == "total"), None),
            summary=_summary(data, span, found),
            counts=[(KIND_LABELS[kind], *counts[kind]) for kind in ProblemKind],
            problems=found,
            charts=_charts(data, span, conformance_threshold),
            remote=remote_section(data.remote) if data.remote is not None else None,
            kind_names=KIND_NAMES,
            hotline=hotline_view(data.hotline, scoped=data.org_code is not None),
            appointments=data.appointments.report if data.appointments is not None else None,
            org_code=data.org_code,
            cutoff_label=cutoff.label(zone),
            cutoff_kind=cutoff.kind.value,
            restatements=[_restated_month(r, zone) for r in restatements],
        )
    )


RESTATED_CELLS_SHOWN = 20
"""Changed cells listed per earlier month; the rest are counted (the API lists them all)."""


def _restated_month(found: MonthRestatements, zone: ZoneInfo) -> dict[str, object]:
    cutoff = found.month.cutoff
    return {
        "month": f"{found.month.month:%Y-%m}",
        "cutoff": f"{cutoff.astimezone(zone):%Y-%m-%d %H:%M}" if cutoff else "",
        "cells": found.cells[:RESTATED_CELLS_SHOWN],
        "more": max(0, len(found.cells) - RESTATED_CELLS_SHOWN),
        "count": len(found.cells),
        "events": found.events_after_cutoff,
    }


def _summary(data: QualityMonth, span: MonthSpan, found: Sequence[InstitutionProblems]) -> list[tuple[str, str, str]]:
    uploads = [*data.districts, *data.hospitals]
    payments = sum((r.payment_amount for r in data.kiosks if r.group != "total"), Decimal("0.00"))
    return [
        ("接入单位", "institutions", f"{len(data.districts)} 区 / {len(data.hospitals)} 医院"),
        ("数据上传量", "records uploaded", fmt.integer(sum(r.records_uploaded for r in uploads))),
        ("本月已过天数", "days over", f"{len(span.ended)} / {span.days_in_month}"),
        ("有问题的单位", "institutions with problems", f"{sum(1 for f in found if f.problems)} / {len(found)}"),
        ("终端缴费金额（元）", "kiosk payments, CNY", fmt.amount(payments)),
    ]


def _short(name: str) -> str:
    return fmt.chart_label(name)


def _upload_charts(rows: Sequence[UploadReportRow], threshold: float, who: str) -> dict[str, Markup]:
    if not rows:
        return {}
    return {
        "records": charts.bar_chart(
            [charts.Bar(_short(r.name), r.records_uploaded, fmt.integer(r.records_uploaded)) for r in rows],
            f"数据上传量（{who}）",
        ),
        "coverage": charts.coverage_chart(
            [charts.Coverage(_short(r.name), r.required_tables, r.declared_tables, r.uploaded_tables) for r in rows],
            f"已上传/申明/规定上传表（{who}）",
        ),
        "conformance": charts.rate_chart(
            [(_short(r.name), r.conformance_rate, fmt.rate(r.conformance_rate)) for r in rows],
            threshold,
            f"实时数据与定时数据符合率（{who}）",
        ),
    }


def _charts(data: QualityMonth, span: MonthSpan, threshold: float) -> dict[str, Markup]:
    out: dict[str, Markup] = {}
    for prefix, rows, who in (("district", data.districts, "区"), ("hospital", data.hospitals, "医院")):
        out.update({f"{prefix}_{k}": v for k, v in _upload_charts(rows, threshold, who).items()})
    uploads = [*data.districts, *data.hospitals]
    if uploads:
        empty = InstitutionDetail()
        out["calendar"] = charts.calendar_chart(
            [(_short(r.name), data.details.get(r.org_code, empty).daily_records) for r in uploads],
            span.days,
            span.ended,
            "每日数据上传",
        )
    if data.appointments is not None and data.appointments.report.rows:
        out["appointment_channels"] = channel_mix_chart(data.appointments.report.rows)
    paying: list[KioskReportRow] = [r for r in data.kiosks if r.group != "total" and r.payment_amount > 0]
    if paying:
        paying.sort(key=lambda r: r.payment_amount, reverse=True)
        out["kiosk_payments"] = charts.bar_chart(
            [
                charts.Bar(
                    _short(r.name),
                    float(r.payment_amount),  # bar length only; the label is the exact Decimal
                    fmt.amount(r.payment_amount),
                    flagged=r.payments == 0,
                )
                for r in paying
            ],
            "终端缴费金额（元）",
        )
    return out
