"""The data-quality checks' catalogue and the upload and kiosk checks (pure, no I/O).

One implementation under every reader: the quality report (`GET /v1/reports/quality`,
services/quality/report.py), the bulletin's problem lists and the scorecard all read the
`Problem`s that services/quality/checks.py `run_checks` finds. Each check has a code (the
contract's where it names one), a severity (`problem`: a figure that is wrong or missing;
`warning`: one worth a look), a sentence (`detail`) and the figures behind it.

The report rows are the ones `GET /v1/reports/uploads` and `/kiosks` serve, so a figure in a
problem is the figure in the tables. The detail (`InstitutionDetail`) adds what the rows only
count: which tables were declared and uploaded, and the records of each day.

The checks of this module, in the order an institution's list shows them:

- `not_declared`: the institution declared no tables (未反馈), so its declared coverage is unknown;
- `declared_not_uploaded`: declared tables without a record this month, each named;
- `undeclared_uploads`: records of tables the institution has not declared;
- `no_uploads` / `days_without_uploads`: days of the month, already over in the platform time
  zone, on which no records arrived; `flatline`: active earlier, then silent for the last
  `flatline_days` or more days over (an institution's uploads, or one of its kiosks);
- `low_conformance`: real-time and scheduled channels agree less than the threshold;
- contradictions, figures that cannot all be true at once (`CONTRADICTION_CHECKS`), among them
  `amount_without_count` (a kiosk amount without transactions, or transactions without amount)
  and `identical_figures` (services/quality/identical.py).

The other streams' checks are in their own modules (hotline.py, appointments.py, remote.py,
trends.py, cross_stream.py) and reach the lists through `with_problems`.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from services.contract.models import InstitutionKind


class ProblemKind(StrEnum):
    """The families of problems; the page groups and counts problems by these."""

    NOT_DECLARED = "not_declared"
    DECLARED_NOT_UPLOADED = "declared_not_uploaded"
    UNDECLARED_UPLOADS = "undeclared_uploads"
    DAYS_WITHOUT_UPLOADS = "days_without_uploads"
    LOW_CONFORMANCE = "low_conformance"
    CONTRADICTION = "contradiction"
    VOLUME_CHANGE = "volume_change"
    UNCONNECTED_REMOTE_UPLOAD = "unconnected_remote_upload"
    BOOKINGS = "bookings"
    CROSS_STREAM = "cross_stream"


KIND_LABELS: Mapping[ProblemKind, tuple[str, str]] = {
    ProblemKind.NOT_DECLARED: ("未反馈申明上传表", "no tables declared"),
    ProblemKind.DECLARED_NOT_UPLOADED: ("申明但未上传的表", "declared tables not uploaded"),
    ProblemKind.UNDECLARED_UPLOADS: ("上传了未申明的表", "uploads of tables not declared"),
    ProblemKind.DAYS_WITHOUT_UPLOADS: ("无数据上传的日期", "days without uploads"),
    ProblemKind.LOW_CONFORMANCE: ("实时与定时数据符合率偏低", "low real-time/scheduled conformance"),
    ProblemKind.CONTRADICTION: ("相互矛盾的数字", "figures that contradict each other"),
    ProblemKind.VOLUME_CHANGE: ("与前几个月相比异常的数量", "figures far off the months before"),
    ProblemKind.UNCONNECTED_REMOTE_UPLOAD: ("未接入远程医疗平台时的上传", "remote uploads while not connected"),
    ProblemKind.BOOKINGS: ("预约挂号", "appointments"),
    ProblemKind.CROSS_STREAM: ("不同来源的数字不一致", "figures of two streams that disagree"),
}


class Severity(StrEnum):
    """How bad a finding is: `problem` (a figure wrong or missing), `warning` (worth a look)."""

    PROBLEM = "problem"
    WARNING = "warning"


class CheckInfo(NamedTuple):
    """A check's family, its titles and its severity."""

    kind: ProblemKind
    title: str
    title_en: str
    severity: Severity


_P, _W = Severity.PROBLEM, Severity.WARNING

# check code -> its family, titles and severity; the order is an institution's list order.
CHECKS: Mapping[str, CheckInfo] = {
    "not_declared": CheckInfo(ProblemKind.NOT_DECLARED, "未反馈申明上传表", "declared no tables", _P),
    "declared_not_uploaded": CheckInfo(
        ProblemKind.DECLARED_NOT_UPLOADED, "申明上传但本月未上传", "declared, not uploaded", _W
    ),
    "undeclared_uploads": CheckInfo(
        ProblemKind.UNDECLARED_UPLOADS, "上传了未申明的表", "records of tables not declared", _W
    ),
    "no_uploads": CheckInfo(ProblemKind.DAYS_WITHOUT_UPLOADS, "本月无数据上传", "no uploads this month", _P),
    "days_without_uploads": CheckInfo(
        ProblemKind.DAYS_WITHOUT_UPLOADS, "部分日期无数据上传", "days without uploads", _W
    ),
    "flatline": CheckInfo(
        ProblemKind.DAYS_WITHOUT_UPLOADS,
        "月末连续多日无数据",
        "silent for the last days of the month after being active",
        _P,
    ),
    "low_conformance": CheckInfo(ProblemKind.LOW_CONFORMANCE, "符合率低于阈值", "conformance below threshold", _W),
    "amount_without_count": CheckInfo(
        ProblemKind.CONTRADICTION,
        "终端交易金额与次数不符",
        "kiosk amount without transactions, or transactions without amount",
        _P,
    ),
    "transactions_without_kiosks": CheckInfo(
        ProblemKind.CONTRADICTION, "无投放终端却有终端交易", "kiosk transactions with no kiosk registered", _P
    ),
    "upload_days_exceed_month": CheckInfo(
        ProblemKind.CONTRADICTION, "数据上传天数超过本月天数", "more upload days than days in the month", _P
    ),
    "uploaded_exceed_required": CheckInfo(
        ProblemKind.CONTRADICTION, "已上传表多于规定上传表", "more tables uploaded than required", _P
    ),
    "days_without_records": CheckInfo(
        ProblemKind.CONTRADICTION, "有上传天数但数据上传量为 0", "upload days but no records", _P
    ),
    "records_without_days": CheckInfo(
        ProblemKind.CONTRADICTION, "有数据上传量但上传天数为 0", "records but no upload day", _P
    ),
    "tables_without_records": CheckInfo(
        ProblemKind.CONTRADICTION, "有已上传表但数据上传量为 0", "uploaded tables but no records", _P
    ),
    "visits_exceed_records": CheckInfo(
        ProblemKind.CONTRADICTION,
        "门急诊与出院人次之和超过数据上传量",
        "visits and discharges exceed the records uploaded",
        _P,
    ),
    "identical_figures": CheckInfo(
        ProblemKind.CONTRADICTION,
        "多项数字与其他单位完全相同",
        "several figures identical to another institution's",
        _P,
    ),
    "volume_outlier": CheckInfo(
        ProblemKind.VOLUME_CHANGE, "与前三个月平均相差过大", "far off the previous three months' mean", _W
    ),
    "hotline_no_contacts": CheckInfo(
        ProblemKind.DAYS_WITHOUT_UPLOADS, "本月无来电及工单数据", "no calls or work orders this month", _P
    ),
    "hotline_silent_days": CheckInfo(
        ProblemKind.DAYS_WITHOUT_UPLOADS, "连续多日无来电及工单数据", "days in a row without calls or work orders", _W
    ),
    "hotline_category_stopped": CheckInfo(
        ProblemKind.VOLUME_CHANGE,
        "上月有、本月为 0 的类别",
        "categories with contacts last month and none this month",
        _W,
    ),
    "hotline_calls_outlier": CheckInfo(
        ProblemKind.VOLUME_CHANGE,
        "受理电话与前三个月平均相差超过 33%",
        "calls off the previous three months' mean by more than 33 %",
        _W,
    ),
    "unconnected_remote_upload": CheckInfo(
        ProblemKind.UNCONNECTED_REMOTE_UPLOAD,
        "未接入远程医疗平台期间上传数据",
        "uploads to a remote-medicine platform on days not connected to it",
        _W,
    ),
    "bookings_without_institution": CheckInfo(
        ProblemKind.BOOKINGS,
        "有预约挂号但参考数据中无此单位",
        "bookings at an institution the reference data does not have",
        _P,
    ),
    "bookings_at_no_clinic": CheckInfo(
        ProblemKind.BOOKINGS,
        "预约挂号记在非医疗机构名下",
        "bookings at a health commission or hotline centre, not at a clinic",
        _W,
    ),
    "bookings_stopped": CheckInfo(
        ProblemKind.BOOKINGS, "上月有预约挂号，本月没有", "bookings last month, none this month", _W
    ),
    "cross_stream_mismatch": CheckInfo(
        ProblemKind.CROSS_STREAM,
        "热线电话预约与各医院电话预约不一致",
        "hotline appointment calls differ from the phone bookings",
        _P,
    ),
}
CONTRADICTION_CHECKS = tuple(code for code, info in CHECKS.items() if info.kind is ProblemKind.CONTRADICTION)
CHECK_ORDER = {code: n for n, code in enumerate(CHECKS)}
"""A check's place in an institution's list."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one institution's month: the check, its sentence and the figures behind it."""

    check: str
    figure: str
    """The sentence (the quality report's `detail`), with the figure that shows the problem."""
    items: tuple[str, ...] = ()
    """What the sentence counts, named one by one (tables, days, the other institutions)."""
    figures: Mapping[str, Any] = field(default_factory=dict)
    """The numbers behind the sentence, as JSON values (exact amounts as strings)."""

    @property
    def kind(self) -> ProblemKind:
        """The family of this problem."""
        return CHECKS[self.check].kind

    @property
    def severity(self) -> Severity:
        """`problem` or `warning`."""
        return CHECKS[self.check].severity

    @property
    def title(self) -> str:
        """What is wrong, in the bulletin's language."""
        return CHECKS[self.check].title

    @property
    def title_en(self) -> str:
        """What is wrong, in English."""
        return CHECKS[self.check].title_en


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
    table_records: Mapping[str, int] = field(default_factory=dict)
    """Records of the month per table (tables without records are absent)."""
    kiosk_daily: Mapping[str, Mapping[date, int]] = field(default_factory=dict)
    """Per kiosk of the institution: its transactions per day of the month."""


@dataclass(frozen=True, slots=True)
class MonthSpan:
    """The month's calendar, and which of its days are over at the time of rendering."""

    first: date
    days: tuple[date, ...]
    ended: tuple[date, ...]
    quiet: frozenset[date] = frozenset()
    """The reference data's `no_upload_days`: nothing is expected on them, so silence there is no gap."""

    @property
    def complete(self) -> bool:
        """Every day of the month is over (figures comparable with whole months)."""
        return len(self.ended) == len(self.days)

    @property
    def days_in_month(self) -> int:
        """28 to 31."""
        return len(self.days)


def month_span(first: date, now: datetime, zone: ZoneInfo, quiet: Iterable[date] = ()) -> MonthSpan:
    """The days of `first`'s month; `ended` holds those over by `now` in the platform time zone.

    A day still in progress (or to come) is not counted as a day without uploads: the bulletin of
    the current month would otherwise blame every institution for today.
    """
    if now.tzinfo is None:
        raise ValueError("now must be time zone aware")
    today = now.astimezone(zone).date()
    count = calendar.monthrange(first.year, first.month)[1]
    days = tuple(first.replace(day=1) + timedelta(days=n) for n in range(count))
    return MonthSpan(first.replace(day=1), days, tuple(d for d in days if d < today), frozenset(quiet))


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
            problems = sorted((*known.problems, *inst.problems), key=lambda p: CHECK_ORDER[p.check])
            out[inst.org_code] = InstitutionProblems(known.org_code, known.name, known.kind, tuple(problems))
    return list(out.values())
