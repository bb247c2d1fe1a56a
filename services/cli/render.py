"""Terminal rendering of reports with rich: the bulletin's columns, readable in a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from services.aggregator.deadletters import DeadLetter
from services.quality.report import QualityReport
from services.quality.scorecard import Scorecard
from services.storage.tokens import TokenInfo
from services.streams.appointments.model import AppointmentReport
from services.streams.hotline.model import HotlineReport
from services.streams.remote_uploads.model import RemotePlatformsReport
from services.streams.uploads.model import MissingUploadRow

_UPLOAD_COLUMNS = [
    ("name", "单位\ninstitution"),
    ("declared_tables", "申明/规定\ndeclared/required"),
    ("uploaded_tables", "已上传表\nuploaded"),
    ("records_uploaded", "数据上传量\nrecords"),
    ("upload_days", "上传天数\ndays"),
    ("outpatient_visits", "门诊\noutpatient"),
    ("discharges", "出院\ndischarges"),
    ("ehr_basic_cumulative", "健康档案\nEHR"),
    ("ehr_hypertension_cumulative", "高血压\nhypertension"),
    ("ehr_diabetes_cumulative", "糖尿病\ndiabetes"),
    ("table_coverage_rate", "覆盖率\ncoverage"),
    ("conformance_rate", "符合率\nconformance"),
]
_KIOSK_COLUMNS = [
    ("group", "group"),
    ("name", "单位\ninstitution"),
    ("kiosks", "终端数\nkiosks"),
    ("registrations", "挂号\nregistrations"),
    ("registration_amount", "挂号金额\namount"),
    ("payments", "缴费\npayments"),
    ("payment_amount", "缴费金额\namount"),
]

_HOTLINE_COLUMNS = [
    ("city", "城市\ncity"),
    ("name", "热线中心\ncentre"),
    ("calls", "受理电话\ncalls"),
    ("consultation", "咨询类\nconsultation"),
    ("complaint", "医疗服务投诉\ncomplaint"),
    ("appointment", "电话预约\nappointment"),
    ("crisis_intervention", "心理危机干预\ncrisis"),
    ("satisfaction_survey", "满意度调查\nsurvey"),
    ("voice_qa", "自助语音问答\nvoice Q&A"),
    ("work_orders_city_12345", "市12345工单\ncity 12345"),
    ("work_orders_province_12345", "省12345工单\nprovince 12345"),
]


def _cell(row: BaseModel, field: str) -> str:
    value = getattr(row, field)
    if field == "declared_tables":
        declared = "未反馈" if value is None else str(value)
        return f"{declared}/{getattr(row, 'required_tables', '?')}"
    if value is None:
        return "—"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:.1%}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def report(console: Console, model: type[BaseModel], rows: Sequence[BaseModel], title: str) -> None:
    """Print a report as a table with the bulletin's column names."""
    columns = _KIOSK_COLUMNS if "kiosks" in model.model_fields else _UPLOAD_COLUMNS
    table = Table(title=title, show_lines=False, header_style="bold")
    for field, header in columns:
        table.add_column(header, justify="left" if field in ("name", "group") else "right", no_wrap=True)
    for row in rows:
        style = "bold" if getattr(row, "group", None) == "total" else None
        table.add_row(*(_cell(row, field) for field, _ in columns), style=style)
    console.print(table)


def hotline(console: Console, report: HotlineReport, title: str) -> None:
    """Print the hotline report: one line per centre, most calls first, then the total."""
    table = Table(title=title, show_lines=False, header_style="bold")
    for field, header in _HOTLINE_COLUMNS:
        table.add_column(header, justify="left" if field in ("city", "name") else "right", no_wrap=True)
    for row in report.rows:
        table.add_row(*(_cell(row, field) for field, _ in _HOTLINE_COLUMNS))
    table.add_row(*(_cell(report.total, field) for field, _ in _HOTLINE_COLUMNS), style="bold")
    console.print(table)


_REMOTE_COLUMNS = [
    ("platform", "平台\nplatform"),
    ("connected", "接入机构\nconnected"),
    ("cities", "城市\ncities"),
    ("districts", "覆盖区\ndistricts"),
    ("districts_primary", "社区覆盖区\nprimary"),
    ("consultations", "会诊\nconsultations"),
    ("cases", "病例\ncases"),
    ("reports", "报告\nreports"),
    ("specimens", "标本\nspecimens"),
    ("images", "图像\nimages"),
    ("consultations_cumulative", "累计会诊\nto date"),
]


def remote_platforms(console: Console, report: RemotePlatformsReport, title: str) -> None:
    """Print the remote-platforms report: the figures per platform, connections by place and level, top uploaders."""
    figures = Table(title=title, header_style="bold")
    for field, header in _REMOTE_COLUMNS:
        figures.add_column(header, justify="left" if field == "platform" else "right", no_wrap=True)
    for platform in report.platforms:
        figures.add_row(*(_cell(platform, field) for field, _ in _REMOTE_COLUMNS))
    console.print(figures)
    places = Table(title="connected at the month's end, by region and level", header_style="bold")
    for header in ("platform", "region", "level", "count"):
        places.add_column(header, justify="right" if header == "count" else "left")
    for platform in report.platforms:
        for row in platform.by_region_level:
            level = row.level.value if row.level is not None else "—"
            places.add_row(platform.platform.value, row.region.value, level, f"{row.count:,}")
    console.print(places)
    top = Table(title="top uploaders of the month", header_style="bold")
    for header in ("platform", "rank", "org_code", "name", "value"):
        top.add_column(header, justify="right" if header in ("rank", "value") else "left")
    for platform in report.platforms:
        for rank, uploader in enumerate(platform.top_uploaders, start=1):
            top.add_row(platform.platform.value, str(rank), uploader.org_code, uploader.name, f"{uploader.value:,}")
    console.print(top)


_CHANNEL_COLUMNS = [
    ("online_12320", "12320在线预约\nonline 12320"),
    ("phone", "电话预约\nphone"),
    ("in_clinic", "诊间预约\nin clinic"),
    ("third_party", "第三方\nthird party"),
    ("subtotal", "小计\nsubtotal"),
]


def appointments(console: Console, report: AppointmentReport, title: str) -> None:
    """Print the appointments report as the bulletin's two tables and its total to date."""
    table = Table(title=title, header_style="bold")
    table.add_column("单位\ninstitution", no_wrap=True)
    for _, header in _CHANNEL_COLUMNS:
        table.add_column(header, justify="right", no_wrap=True)
    for row in report.rows:
        name = row.name if row.name is not None else f"{row.org_code}（参考数据中无此单位 not in the reference data）"
        table.add_row(name, *(_cell(row, field) for field, _ in _CHANNEL_COLUMNS))
    table.add_row("合计 total", *(_cell(report.total, field) for field, _ in _CHANNEL_COLUMNS), style="bold")
    console.print(table)
    cumulative = report.appointments_cumulative
    console.print(
        f"截止月底总预约挂号量 bookings to date: {'—' if cumulative is None else f'{cumulative:,}'}"
        + ("（no appointments opening balance for this month）" if cumulative is None else "")
    )
    platforms = Table(title=f"{report.month} 分途径预约情况统计 bookings by booking platform", header_style="bold")
    platforms.add_column("名称\nplatform", no_wrap=True)
    platforms.add_column("预约数量\nbookings", justify="right", no_wrap=True)
    for p in report.platforms:
        name = p.name if p.name is not None else f"{p.platform_code}（未登记 not registered）"
        platforms.add_row(name, f"{p.appointments:,}")
    platforms.add_row("合计 total", f"{report.platforms_total:,}", style="bold")
    console.print(platforms)


def quality(console: Console, report: QualityReport, title: str) -> None:
    """Print the findings, institution by institution, then the cross-stream comparisons."""
    table = Table(title=title, header_style="bold")
    for header in ("单位\ninstitution", "检查\ncheck", "级别\nseverity", "说明\ndetail"):
        table.add_column(header)
    for row in report.rows:
        detail = row.detail + "".join(f"\n  {item}" for item in row.items)
        table.add_row(f"{row.name}\n{row.org_code}", row.check, row.severity.value, detail)
    console.print(table)
    console.print(f"{len(report.rows)} findings, {report.days_over} days of {report.month} over")
    for c in report.cross_stream:
        verdict = "一致 agrees" if c.agrees else "不一致 disagrees"
        console.print(
            f"{c.name}: 电话预约 {c.appointment_calls:,} / {c.city} phone bookings {c.phone_bookings:,} — {verdict}"
        )


def scorecard(console: Console, card: Scorecard, title: str) -> None:
    """Print the ranking with the previous month's score and rank beside each."""
    table = Table(title=title, header_style="bold")
    for header in (
        "#",
        "单位\ninstitution",
        "得分\nscore",
        "问题/提示\nproblems/warnings",
        f"{card.previous_month}\n#, score",
    ):
        table.add_column(header, justify="right" if header != "单位\ninstitution" else "left")
    for row in card.rows:
        before = "—" if row.previous is None else f"{row.previous.rank}, {row.previous.score:.2f}"
        table.add_row(
            str(row.month.rank),
            f"{row.name} {row.org_code}",
            f"{row.month.score:.2f}",
            f"{row.month.problems}/{row.month.warnings}",
            before,
        )
    console.print(table)


def missing(console: Console, rows: Sequence[MissingUploadRow], day: date) -> None:
    """Print the missing-upload list."""
    if not rows:
        console.print(f"no missing uploads on {day}")
        return
    table = Table(title=f"missing uploads on {day}")
    for header in ("org_code", "name", "kind", "last upload day", "active days of previous 7"):
        table.add_column(header)
    for r in rows:
        table.add_row(r.org_code, r.name, r.kind.value, str(r.last_upload_day), str(r.active_days_in_previous_7))
    console.print(table)


def tokens(console: Console, items: Sequence[TokenInfo]) -> None:
    """Print the token list."""
    table = Table(title="institution tokens")
    for header in ("token_id", "org_code", "label", "created", "revoked"):
        table.add_column(header)
    for t in items:
        table.add_row(
            t.token_id,
            t.org_code,
            t.label,
            f"{t.created_at:%Y-%m-%d %H:%M}",
            f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "",
        )
    console.print(table)


def dead_letters(console: Console, letters: Sequence[DeadLetter]) -> None:
    """Print dead letters, one line each."""
    if not letters:
        console.print("no dead letters")
        return
    table = Table(title="dead letters")
    for header in ("offset", "reason", "origin", "event", "detail"):
        table.add_column(header, overflow="fold")
    for letter in letters:
        origin = f"{letter.origin.get('topic')}[{letter.origin.get('partition')}]@{letter.origin.get('offset')}"
        event = letter.event.get("event_id", "?") if isinstance(letter.event, dict) else "(whole record)"
        if letter.truncated:
            event += f" (cut from {letter.truncated.get('letter_bytes', '?')} bytes: read it at its origin)"
        table.add_row(str(letter.offset), letter.reason, origin, str(event), letter.detail[:200])
    console.print(table)
