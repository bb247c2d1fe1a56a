"""Each institution's problem list, from the month's report rows and a little detail (pure, no I/O).

The report rows are the ones `GET /v1/reports/uploads` and `/kiosks` serve, so a figure in a
problem is the figure in the tables above it. The detail (`InstitutionDetail`) adds what the
rows only count: which declared tables are missing and on which days nothing arrived.

Checks, in the order an institution's list shows them:

- `not_declared`: the institution declared no tables (未反馈), so its declared coverage is unknown;
- `declared_not_uploaded`: declared tables without a record this month, each named;
- `no_uploads` / `days_without_uploads`: days of the month, already over in the platform time
  zone, on which no records arrived;
- `low_conformance`: real-time and scheduled channels agree less than the threshold;
- contradictions, figures that cannot all be true at once (`CONTRADICTION_CHECKS`);
- `unconnected_remote_upload`: uploads to a remote-medicine platform on days the institution was
  not connected to it (`remote_platforms.py`; any kind of institution, added by `with_problems`).
- `bookings_*`: what the appointments section shows that needs a look (services/bulletin/
  appointments.py finds them; `with_problems` adds them to the lists).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from services.contract.models import InstitutionKind
from services.reports import fmt
from services.streams.kiosk.model import KioskReportRow
from services.streams.uploads.model import UploadReportRow


class ProblemKind(StrEnum):
    """The families of problems; the page groups and counts problems by these."""

    NOT_DECLARED = "not_declared"
    DECLARED_NOT_UPLOADED = "declared_not_uploaded"
    DAYS_WITHOUT_UPLOADS = "days_without_uploads"
    LOW_CONFORMANCE = "low_conformance"
    CONTRADICTION = "contradiction"
    VOLUME_CHANGE = "volume_change"
    UNCONNECTED_REMOTE_UPLOAD = "unconnected_remote_upload"
    BOOKINGS = "bookings"


KIND_LABELS: Mapping[ProblemKind, tuple[str, str]] = {
    ProblemKind.NOT_DECLARED: ("未反馈申明上传表", "no tables declared"),
    ProblemKind.DECLARED_NOT_UPLOADED: ("申明但未上传的表", "declared tables not uploaded"),
    ProblemKind.DAYS_WITHOUT_UPLOADS: ("无数据上传的日期", "days without uploads"),
    ProblemKind.LOW_CONFORMANCE: ("实时与定时数据符合率偏低", "low real-time/scheduled conformance"),
    ProblemKind.CONTRADICTION: ("相互矛盾的数字", "figures that contradict each other"),
    ProblemKind.VOLUME_CHANGE: ("与前几个月相比异常的数量", "figures far off the months before"),
    ProblemKind.UNCONNECTED_REMOTE_UPLOAD: ("未接入远程医疗平台时的上传", "remote uploads while not connected"),
    ProblemKind.BOOKINGS: ("预约挂号", "appointments"),
}

# check id -> (kind, Chinese title, English title)
CHECKS: Mapping[str, tuple[ProblemKind, str, str]] = {
    "not_declared": (ProblemKind.NOT_DECLARED, "未反馈申明上传表", "declared no tables"),
    "declared_not_uploaded": (ProblemKind.DECLARED_NOT_UPLOADED, "申明上传但本月未上传", "declared, not uploaded"),
    "no_uploads": (ProblemKind.DAYS_WITHOUT_UPLOADS, "本月无数据上传", "no uploads this month"),
    "days_without_uploads": (ProblemKind.DAYS_WITHOUT_UPLOADS, "部分日期无数据上传", "days without uploads"),
    "low_conformance": (ProblemKind.LOW_CONFORMANCE, "符合率低于阈值", "conformance below threshold"),
    "registration_amount_without_registrations": (
        ProblemKind.CONTRADICTION,
        "挂号 0 次却有挂号金额",
        "registration amount with no registrations",
    ),
    "payment_amount_without_payments": (
        ProblemKind.CONTRADICTION,
        "缴费 0 次却有缴费金额",
        "payment amount with no payments",
    ),
    "transactions_without_kiosks": (
        ProblemKind.CONTRADICTION,
        "无投放终端却有终端交易",
        "kiosk transactions with no kiosk registered",
    ),
    "upload_days_exceed_month": (
        ProblemKind.CONTRADICTION,
        "数据上传天数超过本月天数",
        "more upload days than days in the month",
    ),
    "uploaded_exceed_required": (
        ProblemKind.CONTRADICTION,
        "已上传表多于规定上传表",
        "more tables uploaded than required",
    ),
    "days_without_records": (
        ProblemKind.CONTRADICTION,
        "有上传天数但数据上传量为 0",
        "upload days but no records",
    ),
    "records_without_days": (
        ProblemKind.CONTRADICTION,
        "有数据上传量但上传天数为 0",
        "records but no upload day",
    ),
    "tables_without_records": (
        ProblemKind.CONTRADICTION,
        "有已上传表但数据上传量为 0",
        "uploaded tables but no records",
    ),
    "visits_exceed_records": (
        ProblemKind.CONTRADICTION,
        "门急诊与出院人次之和超过数据上传量",
        "visits and discharges exceed the records uploaded",
    ),
    "identical_ehr_cumulative": (
        ProblemKind.CONTRADICTION,
        "健康档案累计数与其他单位完全相同",
        "cumulative health records identical to another institution's",
    ),
    # 12320 centres (services/bulletin/hotline.py).
    "hotline_no_contacts": (
        ProblemKind.DAYS_WITHOUT_UPLOADS,
        "本月无来电及工单数据",
        "no calls or work orders this month",
    ),
    "hotline_silent_days": (
        ProblemKind.DAYS_WITHOUT_UPLOADS,
        "连续多日无来电及工单数据",
        "days in a row without calls or work orders",
    ),
    "hotline_category_stopped": (
        ProblemKind.VOLUME_CHANGE,
        "上月有、本月为 0 的类别",
        "categories with contacts last month and none this month",
    ),
    "hotline_calls_outlier": (
        ProblemKind.VOLUME_CHANGE,
        "受理电话与前三个月平均相差超过 33%",
        "calls off the previous three months' mean by more than 33 %",
    ),
    "unconnected_remote_upload": (
        ProblemKind.UNCONNECTED_REMOTE_UPLOAD,
        "未接入远程医疗平台期间上传数据",
        "uploads to a remote-medicine platform on days not connected to it",
    ),
    "bookings_without_institution": (
        ProblemKind.BOOKINGS,
        "有预约挂号但参考数据中无此单位",
        "bookings at an institution the reference data does not have",
    ),
    "bookings_at_no_clinic": (
        ProblemKind.BOOKINGS,
        "预约挂号记在非医疗机构名下",
        "bookings at a health commission or hotline centre, not at a clinic",
    ),
    "bookings_stopped": (
        ProblemKind.BOOKINGS,
        "上月有预约挂号，本月没有",
        "bookings last month, none this month",
    ),
}
CONTRADICTION_CHECKS = tuple(code for code, (kind, _, _) in CHECKS.items() if kind is ProblemKind.CONTRADICTION)
_ORDER = {code: n for n, code in enumerate(CHECKS)}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one institution's month, with the figure that shows it."""

    check: str
    figure: str
    items: tuple[str, ...] = ()

    @property
    def kind(self) -> ProblemKind:
        """The family of this problem."""
        return CHECKS[self.check][0]

    @property
    def title(self) -> str:
        """What is wrong, in the bulletin's language."""
        return CHECKS[self.check][1]

    @property
    def title_en(self) -> str:
        """What is wrong, in English."""
        return CHECKS[self.check][2]


@dataclass(frozen=True, slots=True)
class InstitutionProblems:
    """An institution and its problem list (empty when nothing was found)."""

    org_code: str
    name: str
    kind: InstitutionKind | None
    """None for an institution the reference data does not have (its events are still counted)."""
    problems: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class InstitutionDetail:
    """What the problem list needs beyond the report row: table codes and records per day."""

    declared: frozenset[str] = frozenset()
    uploaded: frozenset[str] = frozenset()
    """Tables with at least one record this month."""
    daily_records: Mapping[date, int] = field(default_factory=dict)
    """Records received per day of the month (platform time zone); days without any are absent or 0."""


@dataclass(frozen=True, slots=True)
class MonthSpan:
    """The month's calendar, and which of its days are over at the time of rendering."""

    first: date
    days: tuple[date, ...]
    ended: tuple[date, ...]

    @property
    def days_in_month(self) -> int:
        """28 to 31."""
        return len(self.days)


def month_span(first: date, now: datetime, zone: ZoneInfo) -> MonthSpan:
    """The days of `first`'s month; `ended` holds those over by `now` in the platform time zone.

    A day still in progress (or to come) is not counted as a day without uploads: the bulletin of
    the current month would otherwise blame every institution for today.
    """
    if now.tzinfo is None:
        raise ValueError("now must be time zone aware")
    today = now.astimezone(zone).date()
    count = calendar.monthrange(first.year, first.month)[1]
    days = tuple(first.replace(day=1) + timedelta(days=n) for n in range(count))
    return MonthSpan(first.replace(day=1), days, tuple(d for d in days if d < today))


def find_problems(
    uploads: Sequence[UploadReportRow],
    kiosks: Sequence[KioskReportRow],
    details: Mapping[str, InstitutionDetail],
    table_names: Mapping[str, str],
    span: MonthSpan,
    conformance_threshold: float,
) -> list[InstitutionProblems]:
    """Every institution of `uploads`, in their order, with its problems.

    Cross-institution checks (identical cumulative figures) only compare the rows given, so an
    institution's own bulletin never names another institution.
    """
    kiosk_by_org = {row.org_code: row for row in kiosks if row.group != "total" and row.org_code is not None}
    twins = _identical_ehr(uploads)
    out = []
    for row in uploads:
        detail = details.get(row.org_code, InstitutionDetail())
        found = [
            *_declarations(row, detail, table_names),
            *_days(detail, span),
            *_conformance(row, conformance_threshold),
            *_upload_contradictions(row, span),
            *_kiosk_contradictions(kiosk_by_org.get(row.org_code)),
            *twins.get(row.org_code, ()),
        ]
        found.sort(key=lambda p: _ORDER[p.check])
        out.append(InstitutionProblems(row.org_code, row.name, row.kind, tuple(found)))
    return out


def _declarations(row: UploadReportRow, detail: InstitutionDetail, names: Mapping[str, str]) -> Iterable[Problem]:
    if not detail.declared:
        yield Problem("not_declared", f"申明上传表：未反馈/{row.required_tables}")
        return
    missing = sorted(detail.declared - detail.uploaded)
    if missing:
        uploaded = len(detail.declared) - len(missing)
        yield Problem(
            "declared_not_uploaded",
            f"申明 {len(detail.declared)} 张，已上传 {uploaded} 张，未上传 {len(missing)} 张",
            tuple(f"{code} {names.get(code, '（未知表）')}" for code in missing),
        )


def _days(detail: InstitutionDetail, span: MonthSpan) -> Iterable[Problem]:
    if not span.ended:
        return
    silent = [day for day in span.ended if detail.daily_records.get(day, 0) <= 0]
    if len(silent) == len(span.ended):
        yield Problem("no_uploads", f"已过 {len(span.ended)} 天，无一天有数据上传", tuple(fmt.day_ranges(silent)))
    elif silent:
        yield Problem(
            "days_without_uploads",
            f"已过 {len(span.ended)} 天中 {len(silent)} 天无数据上传",
            tuple(fmt.day_ranges(silent)),
        )


def _conformance(row: UploadReportRow, threshold: float) -> Iterable[Problem]:
    if row.conformance_rate is not None and row.conformance_rate < threshold:
        yield Problem(
            "low_conformance",
            f"符合率 {fmt.rate(row.conformance_rate)}，低于阈值 {fmt.rate(threshold)}",
        )


def _upload_contradictions(row: UploadReportRow, span: MonthSpan) -> Iterable[Problem]:
    if row.upload_days > span.days_in_month:
        yield Problem("upload_days_exceed_month", f"数据上传天数 {row.upload_days} > 本月 {span.days_in_month} 天")
    if row.uploaded_tables > row.required_tables:
        yield Problem("uploaded_exceed_required", f"已上传表 {row.uploaded_tables} > 规定上传表 {row.required_tables}")
    if row.upload_days > 0 and row.records_uploaded == 0:
        yield Problem("days_without_records", f"数据上传天数 {row.upload_days}，数据上传量 0")
    if row.records_uploaded > 0 and row.upload_days == 0:
        yield Problem("records_without_days", f"数据上传量 {fmt.integer(row.records_uploaded)}，数据上传天数 0")
    if row.uploaded_tables > 0 and row.records_uploaded == 0:
        yield Problem("tables_without_records", f"已上传表 {row.uploaded_tables}，数据上传量 0")
    visits = row.outpatient_visits + row.discharges
    if visits > row.records_uploaded:
        yield Problem(
            "visits_exceed_records",
            f"门急诊 {fmt.integer(row.outpatient_visits)} + 出院 {fmt.integer(row.discharges)} "
            f"= {fmt.integer(visits)} > 数据上传量 {fmt.integer(row.records_uploaded)}",
        )


def _kiosk_contradictions(row: KioskReportRow | None) -> Iterable[Problem]:
    if row is None:
        return
    zero = Decimal(0)
    if row.registrations == 0 and row.registration_amount > zero:
        yield Problem(
            "registration_amount_without_registrations",
            f"挂号 0 次，挂号金额 {fmt.amount(row.registration_amount)} 元",
        )
    if row.payments == 0 and row.payment_amount > zero:
        yield Problem("payment_amount_without_payments", f"缴费 0 次，缴费金额 {fmt.amount(row.payment_amount)} 元")
    if row.kiosks == 0 and (row.registrations > 0 or row.payments > 0):
        yield Problem(
            "transactions_without_kiosks",
            f"投放台数 0，挂号 {fmt.integer(row.registrations)} 次，缴费 {fmt.integer(row.payments)} 次",
        )


def _identical_ehr(rows: Sequence[UploadReportRow]) -> dict[str, list[Problem]]:
    groups: dict[tuple[int, int, int], list[UploadReportRow]] = {}
    for row in rows:
        triple = (row.ehr_basic_cumulative, row.ehr_hypertension_cumulative, row.ehr_diabetes_cumulative)
        # All zeros is what every hospital without health records has: no evidence of a copy error.
        if triple != (0, 0, 0):
            groups.setdefault(triple, []).append(row)
    out: dict[str, list[Problem]] = {}
    for (basic, hypertension, diabetes), members in groups.items():
        if len(members) < 2:
            continue
        figure = (
            f"健康档案累计：基本信息 {fmt.integer(basic)} / 高血压 {fmt.integer(hypertension)} "
            f"/ 糖尿病 {fmt.integer(diabetes)}"
        )
        for row in members:
            others = tuple(f"与 {o.name}（{o.org_code}）相同" for o in members if o.org_code != row.org_code)
            out.setdefault(row.org_code, []).append(Problem("identical_ehr_cumulative", figure, others))
    return out


def problem_counts(found: Iterable[InstitutionProblems]) -> dict[ProblemKind, tuple[int, int]]:
    """Per kind: (problems, institutions having at least one), for the summary table."""
    counts: dict[ProblemKind, tuple[int, int]] = {kind: (0, 0) for kind in ProblemKind}
    for inst in found:
        kinds = [p.kind for p in inst.problems]
        for kind in ProblemKind:
            n = kinds.count(kind)
            if n:
                problems, institutions = counts[kind]
                counts[kind] = (problems + n, institutions + 1)
    return counts


def with_problems(
    found: Sequence[InstitutionProblems], more: Iterable[InstitutionProblems]
) -> list[InstitutionProblems]:
    """`found` with the problems of `more` added: to an institution already listed, or as a new one after them.

    For the checks of other streams, whose institutions need not be in the upload report.
    """
    out = {inst.org_code: inst for inst in found}
    for inst in more:
        known = out.get(inst.org_code)
        if known is None:
            out[inst.org_code] = inst
        else:
            problems = sorted((*known.problems, *inst.problems), key=lambda p: _ORDER[p.check])
            out[inst.org_code] = InstitutionProblems(known.org_code, known.name, known.kind, tuple(problems))
    return list(out.values())
