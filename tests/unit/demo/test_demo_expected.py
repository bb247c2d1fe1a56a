"""Expected report rows: bulletin cells where printed, the documented exceptions, the checkers."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from services.demo.bulletin import load_bulletin
from services.demo.expected import (
    DEVIATIONS,
    ExpectedKioskRow,
    ExpectedUploadRow,
    compare_kiosk_report,
    compare_upload_report,
    expected_kiosk_rows,
    expected_upload_rows,
)
from services.demo.month import MonthPlan
from services.demo.reference import org_code_of


def _report_row(row: ExpectedUploadRow) -> dict[str, Any]:
    """The row as the platform's JSON report would show it: rates as floats."""
    out: dict[str, Any] = {}
    for name in ExpectedUploadRow.__slots__:
        value = getattr(row, name)
        out[name] = float(value) if isinstance(value, Fraction) else value
    return out


def _kiosk_report_row(row: ExpectedKioskRow) -> dict[str, Any]:
    return {name: str(getattr(row, name)) if name.endswith("amount") else getattr(row, name) for name in row.__slots__}


def test_district_rows_are_the_bulletin_cells(month_plan: MonthPlan) -> None:
    rows = {r.org_code: r for r in expected_upload_rows("district", month_plan)}
    assert len(rows) == 12
    for cells in load_bulletin().districts:
        row = rows[org_code_of(cells.unit)]
        for name in row.from_bulletin:
            assert getattr(row, name) == getattr(cells, name), (cells.unit, name)
        assert row.table_coverage_rate == Fraction(cells.uploaded_tables, 129)


def test_hospital_rows_list_every_hospital_with_the_bulletin_first(month_plan: MonthPlan) -> None:
    rows = expected_upload_rows("hospital", month_plan)
    assert len(rows) == 48
    assert [r.in_bulletin for r in rows] == [True] * 25 + [False] * 23
    records = [r.records_uploaded for r in rows]
    assert records == sorted(records, reverse=True)
    undeclared = [r for r in rows if r.in_bulletin and r.declared_tables is None]
    assert len(undeclared) == 8
    assert all(r.declared_coverage_rate is None for r in undeclared)
    assert all(r.records_uploaded == 0 and r.conformance_rate is None for r in rows if not r.in_bulletin)


def test_kiosk_rows_apply_the_documented_exceptions() -> None:
    rows = expected_kiosk_rows()
    by_name = {r.name: r for r in rows}
    stomatology = by_name["南京市口腔医院"]
    assert (stomatology.registrations, stomatology.registration_amount) == (0, Decimal("0.00"))
    total = rows[-1]
    assert (total.group, total.org_code) == ("total", None)
    assert total.registration_amount == Decimal("14815576.37")
    assert total.payment_amount == Decimal("185976917.64")
    assert [r.group for r in rows[:-1]] == sorted((r.group for r in rows[:-1]), key=["hospital", "district"].index)
    documented = {(d.unit, d.field, d.demo) for d in DEVIATIONS}
    assert ("南京市口腔医院", "registration_amount", "0.00") in documented
    assert ("合计", "registration_amount", str(total.registration_amount)) in documented
    assert ("合计", "payment_amount", str(total.payment_amount)) in documented


def test_a_matching_upload_report_passes_and_each_difference_is_named(month_plan: MonthPlan) -> None:
    expected = expected_upload_rows("district", month_plan)
    report = [_report_row(r) for r in expected]
    assert compare_upload_report(expected, report) == []
    report[3]["records_uploaded"] -= 1
    report[5]["conformance_rate"] = 0.5
    del report[7]
    problems = compare_upload_report(expected, report)
    assert any("records_uploaded" in p for p in problems)
    assert any("conformance_rate" in p for p in problems)
    assert any("missing from the report" in p for p in problems)
    assert len(problems) == 3


def test_upload_report_order_and_omitted_zero_rows(month_plan: MonthPlan) -> None:
    expected = expected_upload_rows("hospital", month_plan)
    in_bulletin = [_report_row(r) for r in expected if r.in_bulletin]
    assert compare_upload_report(expected, in_bulletin) == []
    assert compare_upload_report(expected, in_bulletin[::-1]) == ["rows are not sorted by records_uploaded descending"]


def test_a_matching_kiosk_report_passes_and_a_cent_off_does_not() -> None:
    expected = expected_kiosk_rows()
    report = [_kiosk_report_row(r) for r in expected]
    assert compare_kiosk_report(expected, report) == []
    report[-1]["payment_amount"] = "185976917.60"
    assert compare_kiosk_report(expected, report) == [
        "total 合计: payment_amount is '185976917.60', expected 185976917.64"
    ]


@pytest.mark.parametrize("value", [None, "n/a", 0.25])
def test_a_rate_is_compared_with_tolerance_only_when_it_is_a_number(value: object, month_plan: MonthPlan) -> None:
    expected = expected_upload_rows("district", month_plan)[:1]
    report = [_report_row(expected[0]) | {"table_coverage_rate": value}]
    assert any("table_coverage_rate" in p for p in compare_upload_report(expected, report))
