"""Terminal rendering of reports with rich: the bulletin's columns, readable in a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from services.aggregator.deadletters import DeadLetter
from services.storage.tokens import TokenInfo
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
