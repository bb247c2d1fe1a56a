"""Each monthly metric of the contract, computed by the streams' pure folds and report functions."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.contract.models import InstitutionKind, RequiredFor, TableCategory
from services.reports.reference import Institution, ReferenceView
from services.streams import STREAMS, ConsumedEvent
from services.streams.kiosk.model import KioskTransaction
from services.streams.kiosk.report import kiosk_inputs_from_deltas, kiosk_report
from services.streams.rollups import Deltas
from services.streams.uploads.fold import ChannelRecords, conformance_sums
from services.streams.uploads.model import UploadEvent
from services.streams.uploads.report import MonthInputs, inputs_from_deltas, upload_report
from tests.fixtures.events import kiosk, upload

SHANGHAI = ZoneInfo("Asia/Shanghai")
APRIL = date(2020, 4, 1)
CATEGORIES = {
    "OPV": TableCategory.OUTPATIENT_VISIT,
    "DIS": TableCategory.DISCHARGE,
    "EHR": TableCategory.EHR_BASIC,
    "HTN": TableCategory.EHR_HYPERTENSION,
    "DM": TableCategory.EHR_DIABETES,
    "LAB": TableCategory.OTHER,
}
REF = ReferenceView(
    institutions=[
        Institution("D1", "甲区", InstitutionKind.DISTRICT),
        Institution("D2", "乙区", InstitutionKind.DISTRICT),
        Institution("H1", "丙医院", InstitutionKind.HOSPITAL),
    ],
    table_category=CATEGORIES,
    table_required_for={
        "OPV": RequiredFor.BOTH,
        "DIS": RequiredFor.BOTH,
        "EHR": RequiredFor.DISTRICT,
        "HTN": RequiredFor.DISTRICT,
        "DM": RequiredFor.DISTRICT,
        "LAB": RequiredFor.HOSPITAL,
    },
    declarations={"D1": frozenset({"OPV", "EHR", "DM", "LAB"})},
    kiosks={"H1": 2, "D1": 1},
)


def fold(
    uploads: Iterable[UploadEvent], kiosk: Iterable[KioskTransaction], zone: tzinfo, received_at: datetime
) -> Deltas:
    """The deltas of both streams' events, each through its stream's fold."""
    deltas = Deltas()
    for name, events in (("upload", uploads), ("kiosk", kiosk)):
        STREAMS[name].fold([ConsumedEvent(e, received_at, 0, n) for n, e in enumerate(events)], zone, deltas)
    return deltas


def _row(events: list[dict[str, Any]], org: str = "D1", month: date = APRIL) -> dict[str, Any]:
    deltas = fold([UploadEvent.model_validate(e) for e in events], [], SHANGHAI, datetime.now(UTC))
    inputs = inputs_from_deltas(deltas, month, CATEGORIES)
    kind = next(i.kind for i in REF.institutions if i.org_code == org)
    rows = upload_report(kind, month, inputs, REF)
    return next(r for r in rows if r.org_code == org).model_dump()


def test_records_and_documents_sum_both_channels_in_the_month() -> None:
    row = _row(
        [
            upload(record_count=5, document_count=2),
            upload(record_count=7, mode="scheduled", document_count=1),
            upload(record_count=100, uploaded_at="2020-05-01T00:00:00+08:00"),
        ]
    )
    assert (row["records_uploaded"], row["documents_uploaded"]) == (12, 3)


def test_upload_days_are_local_calendar_days_with_records() -> None:
    row = _row(
        [
            upload(uploaded_at="2020-04-01T23:59:59+08:00"),
            upload(uploaded_at="2020-04-01T16:00:00Z"),  # 2020-04-02 00:00 in Shanghai
            upload(uploaded_at="2020-04-02T08:00:00+08:00"),
            upload(uploaded_at="2020-04-03T08:00:00+08:00", record_count=0),  # liveness only
        ]
    )
    assert row["upload_days"] == 2


def test_uploaded_tables_coverage_and_declared_coverage() -> None:
    row = _row(
        [
            upload(table_code="OPV"),
            upload(table_code="EHR"),
            upload(table_code="HTN"),
            upload(table_code="DM", record_count=0),
        ]
    )
    assert row["uploaded_tables"] == 3
    assert row["required_tables"] == 5
    assert row["declared_tables"] == 4
    assert row["table_coverage_rate"] == pytest.approx(3 / 5)
    assert row["declared_coverage_rate"] == pytest.approx(2 / 4)


def test_undeclared_institution_has_null_declared_figures() -> None:
    row = _row([upload(org_code="D2")], org="D2")
    assert (row["declared_tables"], row["declared_coverage_rate"]) == (None, None)


def test_category_sums_and_cumulative_health_records() -> None:
    row = _row(
        [
            upload(table_code="OPV", record_count=11),
            upload(table_code="DIS", record_count=3),
            upload(table_code="EHR", record_count=100, uploaded_at="2019-12-31T12:00:00+08:00"),
            upload(table_code="EHR", record_count=5),
            upload(table_code="HTN", record_count=2, uploaded_at="2020-03-31T23:59:59+08:00"),
            upload(table_code="DM", record_count=50, uploaded_at="2020-05-01T00:00:01+08:00"),
        ]
    )
    assert (row["outpatient_visits"], row["discharges"]) == (11, 3)
    assert row["ehr_basic_cumulative"] == 105
    assert row["ehr_hypertension_cumulative"] == 2
    assert row["ehr_diabetes_cumulative"] == 0  # uploaded after the end of April


def test_conformance_by_business_date_over_pairs_with_records() -> None:
    row = _row(
        [
            upload(table_code="OPV", business_date="2020-04-10", record_count=10),
            upload(
                table_code="OPV",
                business_date="2020-04-10",
                record_count=8,
                mode="scheduled",
                uploaded_at="2020-04-11T02:00:00+08:00",
            ),
            upload(table_code="DIS", business_date="2020-04-10", record_count=4),  # no scheduled: 0/4
            upload(table_code="EHR", business_date="2020-04-10", record_count=0),  # max 0: ignored
            # Business date in March: belongs to March's conformance even though uploaded in April.
            upload(table_code="OPV", business_date="2020-03-31", record_count=9, mode="scheduled"),
        ]
    )
    assert row["conformance_rate"] == pytest.approx((8 + 0) / (10 + 4), abs=1e-4)


def test_conformance_is_null_without_pairs() -> None:
    assert _row([upload(record_count=0)])["conformance_rate"] is None
    assert conformance_sums([ChannelRecords(0, 0)]) == (0, 0, 0)


def test_institution_without_events_still_has_a_row() -> None:
    row = _row([upload(org_code="D2")], org="D1")
    assert row["records_uploaded"] == 0 and row["upload_days"] == 0 and row["conformance_rate"] is None


def test_uploads_report_is_sorted_by_records_most_first() -> None:
    deltas = fold(
        [
            UploadEvent.model_validate(upload(org_code="D1", record_count=1)),
            UploadEvent.model_validate(upload(org_code="D2", record_count=9)),
        ],
        [],
        SHANGHAI,
        datetime.now(UTC),
    )
    rows = upload_report(InstitutionKind.DISTRICT, APRIL, inputs_from_deltas(deltas, APRIL, CATEGORIES), REF)
    assert [r.org_code for r in rows] == ["D2", "D1"]


def test_kiosk_sums_are_exact_decimals_grouped_with_a_total() -> None:
    txs = [
        kiosk(kind="payment", amount="0.10"),
        kiosk(kind="payment", amount="0.20"),
        kiosk(kind="registration", amount="5"),
        kiosk(org_code="D1", kiosk_id="K-D1-1", kind="payment", amount="999999999.99"),
        kiosk(kind="payment", amount="1.00", occurred_at="2020-03-31T16:00:00Z"),  # April 1 in Shanghai
        kiosk(kind="payment", amount="7.00", occurred_at="2020-04-30T16:00:00Z"),  # May 1 in Shanghai
    ]
    deltas = fold([], [KioskTransaction.model_validate(t) for t in txs], SHANGHAI, datetime.now(UTC))
    rows = kiosk_report(kiosk_inputs_from_deltas(deltas, APRIL), REF)
    assert [(r.group, r.org_code) for r in rows] == [
        ("hospital", "H1"),
        ("district", "D1"),
        ("district", "D2"),
        ("total", None),
    ]
    h1, total = rows[0], rows[-1]
    assert (h1.kiosks, h1.payments, h1.payment_amount) == (2, 3, Decimal("1.30"))
    assert (h1.registrations, h1.registration_amount) == (1, Decimal("5"))
    assert total.payment_amount == Decimal("1000000001.29")
    assert total.kiosks == 3


def test_month_inputs_default_is_empty() -> None:
    assert MonthInputs().records == 0
    assert MonthInputs().uploaded_tables == set()
