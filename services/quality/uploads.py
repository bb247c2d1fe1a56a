"""The checks of the upload and kiosk report rows (pure): declarations, silent days, conformance,
figures that contradict each other. The catalogue and the order of the checks: problems.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal

from services.quality.identical import identical_upload_rows
from services.quality.problems import CHECK_ORDER, InstitutionDetail, InstitutionProblems, MonthSpan, Problem
from services.reports import fmt
from services.streams.kiosk.model import KioskReportRow
from services.streams.uploads.model import UploadReportRow

FLATLINE_DAYS = 3
"""The contract's default: silent days in a row at the end of the month that make a flatline."""


def find_problems(
    uploads: Sequence[UploadReportRow],
    kiosks: Sequence[KioskReportRow],
    details: Mapping[str, InstitutionDetail],
    table_names: Mapping[str, str],
    span: MonthSpan,
    conformance_threshold: float,
    flatline_days: int = FLATLINE_DAYS,
) -> list[InstitutionProblems]:
    """Every institution of `uploads`, in their order, with the problems of its upload and kiosk rows.

    Cross-institution checks (identical figures) only compare the rows given, so an
    institution's own list never names another institution.
    """
    kiosk_by_org = {row.org_code: row for row in kiosks if row.group != "total" and row.org_code is not None}
    twins = identical_upload_rows(uploads)
    out = []
    for row in uploads:
        detail = details.get(row.org_code, InstitutionDetail())
        found = [
            *_declarations(row, detail, table_names),
            *_days(detail, span),
            *_flatline(detail, span, flatline_days),
            *_conformance(row, conformance_threshold),
            *_upload_contradictions(row, span),
            *_kiosk_contradictions(kiosk_by_org.get(row.org_code)),
            *twins.get(row.org_code, ()),
        ]
        found.sort(key=lambda p: CHECK_ORDER[p.check])
        out.append(InstitutionProblems(row.org_code, row.name, row.kind, tuple(found)))
    return out


def _declarations(row: UploadReportRow, detail: InstitutionDetail, names: Mapping[str, str]) -> Iterable[Problem]:
    if not detail.declared:
        yield Problem(
            "not_declared",
            f"申明上传表：未反馈/{row.required_tables}",
            figures={"declared_tables": None, "required_tables": row.required_tables},
        )
    missing = sorted(detail.declared - detail.uploaded)
    if missing:
        uploaded = len(detail.declared) - len(missing)
        yield Problem(
            "declared_not_uploaded",
            f"申明 {len(detail.declared)} 张，已上传 {uploaded} 张，未上传 {len(missing)} 张",
            tuple(f"{code} {names.get(code, '（未知表）')}" for code in missing),
            {"declared_tables": len(detail.declared), "uploaded": uploaded, "missing": missing},
        )
    # Without declarations every table is "undeclared": that is not_declared's problem, not this one.
    extra = sorted(t for t in detail.uploaded - detail.declared if detail.declared)
    if extra:
        records = sum(detail.table_records.get(code, 0) for code in extra)
        yield Problem(
            "undeclared_uploads",
            f"上传了 {len(extra)} 张未申明的表，共 {fmt.integer(records)} 条记录",
            tuple(
                f"{code} {names.get(code, '（未知表）')}：{fmt.integer(detail.table_records.get(code, 0))} 条"
                for code in extra
            ),
            {"tables": extra, "records": records},
        )


def _days(detail: InstitutionDetail, span: MonthSpan) -> Iterable[Problem]:
    expected = [day for day in span.ended if day not in span.quiet]
    if not expected:
        return
    silent = [day for day in expected if detail.daily_records.get(day, 0) <= 0]
    figures = {"days_over": len(span.ended), "days_expected": len(expected), "silent_days": len(silent)}
    if len(silent) == len(expected):
        yield Problem(
            "no_uploads", f"已过 {len(span.ended)} 天，无一天有数据上传", tuple(fmt.day_ranges(silent)), figures
        )
    elif silent:
        yield Problem(
            "days_without_uploads",
            f"已过 {len(span.ended)} 天中 {len(silent)} 天无数据上传",
            tuple(fmt.day_ranges(silent)),
            figures,
        )


def trailing_silence(daily: Mapping[date, int], span: MonthSpan) -> tuple[list[date], int]:
    """The silent days over at the month's end, latest last (no_upload_days neither count nor break
    the run), and on how many days before them anything arrived."""
    run: list[date] = []
    for n, day in enumerate(reversed(span.ended)):
        if daily.get(day, 0) > 0:
            before = span.ended[: len(span.ended) - n]
            return run[::-1], sum(1 for d in before if daily.get(d, 0) > 0)
        if day not in span.quiet:
            run.append(day)
    return run[::-1], 0


def _is_flatline(daily: Mapping[date, int], span: MonthSpan, flatline_days: int) -> list[date]:
    # "Active earlier": on at least `flatline_days` days before the silence, so that a feed that
    # sends once a week (or sent once) is not called stopped after three quiet days.
    silent, active_days = trailing_silence(daily, span)
    return silent if len(silent) >= flatline_days and active_days >= flatline_days else []


def _flatline(detail: InstitutionDetail, span: MonthSpan, flatline_days: int) -> Iterable[Problem]:
    silent = _is_flatline(detail.daily_records, span, flatline_days)
    if silent:
        last = max(day for day, n in detail.daily_records.items() if n > 0 and day < silent[0])
        yield Problem(
            "flatline",
            f"{last.month}月{last.day}日后连续 {len(silent)} 天无数据上传",
            tuple(fmt.day_ranges(silent)),
            {"what": "uploads", "silent_days": len(silent), "last_active_day": last.isoformat()},
        )
    for kiosk_id in sorted(detail.kiosk_daily):
        daily = detail.kiosk_daily[kiosk_id]
        silent = _is_flatline(daily, span, flatline_days)
        if silent:
            last = max(day for day, n in daily.items() if n > 0 and day < silent[0])
            yield Problem(
                "flatline",
                f"终端 {kiosk_id}：{last.month}月{last.day}日后连续 {len(silent)} 天无交易",
                tuple(fmt.day_ranges(silent)),
                {
                    "what": "kiosk",
                    "kiosk_id": kiosk_id,
                    "silent_days": len(silent),
                    "last_active_day": last.isoformat(),
                },
            )


def _conformance(row: UploadReportRow, threshold: float) -> Iterable[Problem]:
    if row.conformance_rate is not None and row.conformance_rate < threshold:
        yield Problem(
            "low_conformance",
            f"符合率 {fmt.rate(row.conformance_rate)}，低于阈值 {fmt.rate(threshold)}",
            figures={"conformance_rate": row.conformance_rate, "threshold": threshold},
        )


def _upload_contradictions(row: UploadReportRow, span: MonthSpan) -> Iterable[Problem]:
    if row.upload_days > span.days_in_month:
        yield Problem(
            "upload_days_exceed_month",
            f"数据上传天数 {row.upload_days} > 本月 {span.days_in_month} 天",
            figures={"upload_days": row.upload_days, "days_in_month": span.days_in_month},
        )
    if row.uploaded_tables > row.required_tables:
        yield Problem(
            "uploaded_exceed_required",
            f"已上传表 {row.uploaded_tables} > 规定上传表 {row.required_tables}",
            figures={"uploaded_tables": row.uploaded_tables, "required_tables": row.required_tables},
        )
    if row.upload_days > 0 and row.records_uploaded == 0:
        yield Problem(
            "days_without_records",
            f"数据上传天数 {row.upload_days}，数据上传量 0",
            figures={"upload_days": row.upload_days, "records_uploaded": 0},
        )
    if row.records_uploaded > 0 and row.upload_days == 0:
        yield Problem(
            "records_without_days",
            f"数据上传量 {fmt.integer(row.records_uploaded)}，数据上传天数 0",
            figures={"records_uploaded": row.records_uploaded, "upload_days": 0},
        )
    if row.uploaded_tables > 0 and row.records_uploaded == 0:
        yield Problem(
            "tables_without_records",
            f"已上传表 {row.uploaded_tables}，数据上传量 0",
            figures={"uploaded_tables": row.uploaded_tables, "records_uploaded": 0},
        )
    visits = row.outpatient_visits + row.discharges
    if visits > row.records_uploaded:
        yield Problem(
            "visits_exceed_records",
            f"门急诊 {fmt.integer(row.outpatient_visits)} + 出院 {fmt.integer(row.discharges)} "
            f"= {fmt.integer(visits)} > 数据上传量 {fmt.integer(row.records_uploaded)}",
            figures={
                "outpatient_visits": row.outpatient_visits,
                "discharges": row.discharges,
                "records_uploaded": row.records_uploaded,
            },
        )


_KIOSK_WORDS = {"registration": "挂号", "payment": "缴费"}


def amount_without_count(
    registrations: int, registration_amount: Decimal, payments: int, payment_amount: Decimal
) -> list[Problem]:
    """The contract's amount_without_count on one kiosk row: money without a transaction, or
    transactions without money (every registration and payment carries an amount)."""
    zero = Decimal(0)
    found = []
    for kind, count, amount in (
        ("registration", registrations, registration_amount),
        ("payment", payments, payment_amount),
    ):
        if (count == 0 and amount > zero) or (count > 0 and amount == zero):
            found.append(
                Problem(
                    "amount_without_count",
                    f"{_KIOSK_WORDS[kind]} {fmt.integer(count)} 次，{_KIOSK_WORDS[kind]}金额 {fmt.amount(amount)} 元",
                    figures={"kind": kind, "transactions": count, "amount": f"{amount:.2f}"},
                )
            )
    return found


def _kiosk_contradictions(row: KioskReportRow | None) -> Iterable[Problem]:
    if row is None:
        return
    yield from amount_without_count(row.registrations, row.registration_amount, row.payments, row.payment_amount)
    if row.kiosks == 0 and (row.registrations > 0 or row.payments > 0):
        yield Problem(
            "transactions_without_kiosks",
            f"投放台数 0，挂号 {fmt.integer(row.registrations)} 次，缴费 {fmt.integer(row.payments)} 次",
            figures={"kiosks": 0, "registrations": row.registrations, "payments": row.payments},
        )
