"""`identical_figures`: two institutions of one report whose rows agree on several counts (a copied row).

The contract's rule: three or more count fields agree, at least two of them non-zero and one
≥ 1,000. Only figures that are counted independently take part: a subtotal or a total of the
others (appointments' `subtotal`, the hotline's `calls`) agrees whenever its parts do, and a
day or table count (≤ 31, a few hundred) agrees by chance too often to be evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations

from services.quality.problems import Problem
from services.reports import fmt
from services.streams.appointments.model import AppointmentRow
from services.streams.hotline.model import HotlineRow
from services.streams.kiosk.model import KioskReportRow
from services.streams.uploads.model import UploadReportRow

MIN_FIELDS = 3
MIN_NON_ZERO = 2
MIN_LARGE = 1000

Figure = int | Decimal

UPLOAD_FIELDS: Mapping[str, str] = {
    "records_uploaded": "数据上传量",
    "documents_uploaded": "CDA文档",
    "outpatient_visits": "门急诊",
    "discharges": "出院",
    "ehr_basic_cumulative": "健康档案累计：基本信息",
    "ehr_hypertension_cumulative": "高血压",
    "ehr_diabetes_cumulative": "糖尿病",
}
KIOSK_FIELDS: Mapping[str, str] = {
    "registrations": "挂号",
    "registration_amount": "挂号金额",
    "payments": "缴费",
    "payment_amount": "缴费金额",
}
APPOINTMENT_FIELDS: Mapping[str, str] = {
    "online_12320": "12320在线预约",
    "phone": "电话预约",
    "in_clinic": "诊间预约",
    "third_party": "第三方",
}
HOTLINE_FIELDS: Mapping[str, str] = {
    "consultation": "咨询",
    "complaint": "投诉",
    "appointment": "电话预约",
    "crisis_intervention": "心理危机干预",
    "satisfaction_survey": "满意度调查",
    "voice_qa": "自助语音问答",
    "work_orders_city_12345": "市12345工单",
    "work_orders_province_12345": "省12345工单",
}


@dataclass(frozen=True, slots=True)
class Compared:
    """One institution's row of a report, reduced to the figures compared."""

    org_code: str
    name: str
    figures: Mapping[str, Figure]


def agreeing(a: Mapping[str, Figure], b: Mapping[str, Figure]) -> dict[str, Figure] | None:
    """The fields two rows agree on, when they are evidence of a copy (the contract's rule); else None."""
    same = {name: value for name, value in a.items() if b.get(name) == value}
    non_zero = [value for value in same.values() if value != 0]
    if len(same) >= MIN_FIELDS and len(non_zero) >= MIN_NON_ZERO and any(v >= MIN_LARGE for v in non_zero):
        return same
    return None


def _json(value: Figure) -> int | str:
    return value if isinstance(value, int) else f"{value:.2f}"


def _shown(value: Figure) -> str:
    return fmt.amount(value) if isinstance(value, Decimal) else fmt.integer(value)


def identical_figures(rows: Sequence[Compared], labels: Mapping[str, str], report: str) -> dict[str, list[Problem]]:
    """Per institution of `rows` (one report), one problem naming every other row it agrees with."""
    found: dict[str, list[tuple[Compared, dict[str, Figure]]]] = {}
    for a, b in combinations(rows, 2):
        same = agreeing(a.figures, b.figures)
        if same is not None:
            found.setdefault(a.org_code, []).append((b, same))
            found.setdefault(b.org_code, []).append((a, same))
    out: dict[str, list[Problem]] = {}
    for org, twins in found.items():
        first = twins[0][1]
        sentence = " / ".join(f"{labels[name]} {_shown(value)}" for name, value in first.items())
        out[org] = [
            Problem(
                "identical_figures",
                sentence,
                tuple(f"与 {other.name}（{other.org_code}）相同：{', '.join(same)}" for other, same in twins),
                {
                    "report": report,
                    "fields": {
                        name: value if isinstance(value, int) else f"{value:.2f}" for name, value in first.items()
                    },
                    "same_as": [other.org_code for other, _ in twins],
                },
            )
        ]
    return out


def identical_upload_rows(rows: Sequence[UploadReportRow]) -> dict[str, list[Problem]]:
    """identical_figures among the upload rows, district with district and hospital with hospital."""
    out: dict[str, list[Problem]] = {}
    for kind in sorted({row.kind for row in rows}):
        compared = [
            Compared(r.org_code, r.name, {f: getattr(r, f) for f in UPLOAD_FIELDS}) for r in rows if r.kind is kind
        ]
        out.update(identical_figures(compared, UPLOAD_FIELDS, f"uploads_{kind.value}"))
    return out


def identical_kiosk_rows(rows: Sequence[KioskReportRow]) -> dict[str, list[Problem]]:
    """identical_figures among the kiosk report's institutions (the total row left out)."""
    compared = [
        Compared(r.org_code, r.name, {f: getattr(r, f) for f in KIOSK_FIELDS})
        for r in rows
        if r.group != "total" and r.org_code is not None
    ]
    return identical_figures(compared, KIOSK_FIELDS, "kiosks")


def identical_appointment_rows(rows: Sequence[AppointmentRow]) -> dict[str, list[Problem]]:
    """identical_figures among the appointments report's institutions."""
    compared = [
        Compared(r.org_code, r.name or r.org_code, {f: getattr(r, f) for f in APPOINTMENT_FIELDS}) for r in rows
    ]
    return identical_figures(compared, APPOINTMENT_FIELDS, "appointments")


def identical_hotline_rows(rows: Sequence[HotlineRow]) -> dict[str, list[Problem]]:
    """identical_figures among the hotline report's centres."""
    compared = [
        Compared(r.org_code, r.name, {f: getattr(r, f) for f in HOTLINE_FIELDS}) for r in rows if r.org_code is not None
    ]
    return identical_figures(compared, HOTLINE_FIELDS, "hotline")
