"""`volume_outlier`: a month's records uploaded, or kiosk transactions, far off the previous three months.

WHO's Data Quality Review compares a month with the mean of the months before it: more than a
third (33 %, a setting) above or below it is worth a look. Only whole months are compared (a
month still running is not), and only when each of the previous three months has a figure
(an institution that started uploading last month has nothing to be compared with yet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from fractions import Fraction

from services.quality.problems import MonthSpan, Problem
from services.reports import fmt
from services.streams.hotline.report import months_before
from services.streams.kiosk.model import KioskReportRow
from services.streams.uploads.model import UploadReportRow

OUTLIER_SHARE = 0.33
"""The contract's default: off the mean of the previous three months by more than this share."""

History = Mapping[str, Mapping[date, int]]
"""org_code -> first day of an earlier month -> its figure."""


def deviation(value: int, earlier: Sequence[int]) -> Fraction | None:
    """(value − mean) / mean of `earlier`; None when a month has no figure (nothing to compare with)."""
    if not earlier or any(n <= 0 for n in earlier):
        return None
    mean = Fraction(sum(earlier), len(earlier))
    return (value - mean) / mean


def _outlier(
    what: str, label: str, unit: str, value: int, history: Mapping[date, int], span: MonthSpan, share: float
) -> Problem | None:
    months = months_before(span.first)
    earlier = [history.get(m, 0) for m in months]
    change = deviation(value, earlier)
    if change is None or abs(change) <= Fraction(share):
        return None
    mean = Fraction(sum(earlier), len(earlier))
    return Problem(
        "volume_outlier",
        f"{label} {fmt.integer(value)} {unit}，前三个月平均 {fmt.integer(round(mean))} {unit}（{float(change):+.0%}）",
        tuple(f"{m.month}月 {fmt.integer(n)} {unit}" for m, n in zip(months, earlier, strict=True)),
        {
            "what": what,
            "value": value,
            "previous_months": {m.strftime("%Y-%m"): n for m, n in zip(months, earlier, strict=True)},
            "mean": round(float(mean), 2),
            "change": round(float(change), 4),
            "threshold": share,
        },
    )


def volume_outliers(
    uploads: Sequence[UploadReportRow],
    kiosks: Sequence[KioskReportRow],
    records_before: History,
    transactions_before: History,
    span: MonthSpan,
    share: float = OUTLIER_SHARE,
) -> dict[str, list[Problem]]:
    """Per institution, its records uploaded and its kiosk transactions against its previous three months."""
    out: dict[str, list[Problem]] = {}
    if not span.complete:
        return out
    for row in uploads:
        found = _outlier(
            "records_uploaded",
            "数据上传量",
            "条",
            row.records_uploaded,
            records_before.get(row.org_code, {}),
            span,
            share,
        )
        if found is not None:
            out.setdefault(row.org_code, []).append(found)
    for k in kiosks:
        if k.group == "total" or k.org_code is None:
            continue
        value = k.registrations + k.payments
        found = _outlier(
            "kiosk_transactions", "终端交易", "次", value, transactions_before.get(k.org_code, {}), span, share
        )
        if found is not None:
            out.setdefault(k.org_code, []).append(found)
    return out
