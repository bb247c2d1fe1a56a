"""Report rows and bulletin data for the bulletin's unit tests (no database)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from services.contract.models import InstitutionKind
from services.quality.month import QualityMonth
from services.quality.problems import InstitutionDetail
from services.streams.kiosk.model import KioskReportRow
from services.streams.uploads.model import UploadReportRow

APRIL = date(2020, 4, 1)


def upload_row(org_code: str = "D1", **fields: Any) -> UploadReportRow:
    """A consistent district row (no problem of its own); override any field."""
    values: dict[str, Any] = {
        "org_code": org_code,
        "name": f"{org_code}区",
        "kind": InstitutionKind.DISTRICT,
        "month": "2020-04",
        "records_uploaded": 1000,
        "documents_uploaded": 10,
        "upload_days": 30,
        "uploaded_tables": 3,
        "declared_tables": 3,
        "required_tables": 5,
        "table_coverage_rate": 0.6,
        "declared_coverage_rate": 1.0,
        "outpatient_visits": 400,
        "discharges": 20,
        "ehr_basic_cumulative": 0,
        "ehr_hypertension_cumulative": 0,
        "ehr_diabetes_cumulative": 0,
        "conformance_rate": 0.99,
        "completeness_rate": 0.98,
        "conformity_rate": 0.975,
        "linkage_rate": 0.9,
        "continuity_rate": 1.0,
    }
    values.update(fields)
    return UploadReportRow(**values)


def kiosk_row(org_code: str | None = "D1", **fields: Any) -> KioskReportRow:
    """A consistent kiosk row; override any field."""
    values: dict[str, Any] = {
        "group": "district",
        "org_code": org_code,
        "name": f"{org_code}区",
        "kiosks": 2,
        "registrations": 3,
        "registration_amount": Decimal("30.00"),
        "payments": 1,
        "payment_amount": Decimal("12.50"),
    }
    values.update(fields)
    return KioskReportRow(**values)


def every_day(records: int = 10) -> dict[date, int]:
    """Records on each day of April 2020."""
    return {date(2020, 4, d): records for d in range(1, 31)}


def full_detail(tables: frozenset[str] = frozenset({"OPV", "DIS", "EHR"})) -> InstitutionDetail:
    """Declared and uploaded the same tables, records every day: nothing to report."""
    return InstitutionDetail(declared=tables, uploaded=tables, daily_records=every_day())


def bulletin_data(**fields: Any) -> QualityMonth:
    """Two districts, one hospital, their kiosks and a total; override any field."""
    districts = [
        upload_row("D1", records_uploaded=5000),
        upload_row("D2", name="乙区", records_uploaded=100, outpatient_visits=50, discharges=5),
    ]
    hospitals = [
        upload_row("H1", name="丙医院", kind=InstitutionKind.HOSPITAL, records_uploaded=700, declared_tables=None)
    ]
    kiosks = [
        kiosk_row("H1", group="hospital", name="丙医院", payment_amount=Decimal("185976917.64")),
        kiosk_row("D1"),
        kiosk_row("D2", name="乙区"),
        kiosk_row(
            None,
            group="total",
            name="合计 Total",
            kiosks=6,
            registrations=9,
            registration_amount=Decimal("90.00"),
            payments=3,
            payment_amount=Decimal("185976942.64"),
        ),
    ]
    values: dict[str, Any] = {
        "month": APRIL,
        "org_code": None,
        "districts": districts,
        "hospitals": hospitals,
        "kiosks": kiosks,
        "details": {"D1": full_detail(), "D2": full_detail(), "H1": InstitutionDetail(daily_records=every_day())},
        "table_names": {"OPV": "门诊就诊记录", "DIS": "出院小结", "EHR": "个人基本信息", "DM": "糖尿病随访"},
    }
    values.update(fields)
    return QualityMonth(**values)
