"""The generated month reproduces the bulletin, and has what real streams have.

`summary` is the whole month put through the tests' own implementation of the
contract's metric definitions (conftest.py), computed once per session.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import pytest

from services.demo.expected import expected_kiosk_rows, expected_missing_uploads, expected_upload_rows
from services.demo.month import MonthPlan, apportion, generate_month, plan_month, stamp
from tests.fixtures.uploads_fold import measured_upload_figures, read_csv

if TYPE_CHECKING:
    from tests.fixtures.uploads_fold import StreamSummary

UPLOAD_FIELDS = (
    "records_uploaded", "documents_uploaded", "upload_days", "uploaded_tables", "outpatient_visits",
    "discharges", "ehr_basic_cumulative", "ehr_hypertension_cumulative", "ehr_diabetes_cumulative",
    "conformance_rate",
)  # fmt: skip


def _measured(summary: StreamSummary, org_code: str) -> dict[str, Any]:
    figures = summary.uploads.get(org_code)
    if figures is None:
        return dict.fromkeys(UPLOAD_FIELDS, 0) | {"conformance_rate": None}
    return {
        "records_uploaded": figures.records,
        "upload_days": len(figures.days),
        "uploaded_tables": len(figures.tables),
        **measured_upload_figures(summary)[org_code],
    }


@pytest.mark.parametrize("kind", ["district", "hospital"])
def test_every_printed_upload_figure_is_reproduced_exactly(
    kind: str, summary: StreamSummary, month_plan: MonthPlan
) -> None:
    rows = expected_upload_rows(kind, reference=month_plan.reference)  # type: ignore[arg-type]
    assert sum(r.in_bulletin for r in rows) == (12 if kind == "district" else 25)
    for row in rows:
        measured = _measured(summary, row.org_code)
        wanted = {name: getattr(row, name) for name in UPLOAD_FIELDS if name in row.checked}
        assert {name: measured[name] for name in wanted} == wanted, row.name
        assert row.from_bulletin <= row.checked
    # The bulletin's cells themselves, not only the expected rows, for two rows read by hand.
    by_name = {r.name: r for r in rows}
    if kind == "district":
        jiangning = _measured(summary, by_name["江宁区"].org_code)
        assert (jiangning["records_uploaded"], jiangning["upload_days"], jiangning["discharges"]) == (7563186, 30, 7706)
        assert jiangning["ehr_diabetes_cumulative"] == 56077
    else:
        occupational = _measured(summary, by_name["南京市职业病防治院"].org_code)
        assert (occupational["uploaded_tables"], occupational["records_uploaded"]) == (34, 12541)
        assert (occupational["upload_days"], occupational["documents_uploaded"]) == (22, 0)


@pytest.mark.parametrize("kind", ["district", "hospital"])
def test_what_the_bulletin_does_not_print_is_plausible(
    kind: str, summary: StreamSummary, month_plan: MonthPlan
) -> None:
    # Not printed, so no exact value to expect: the fold's figures must at least make sense.
    for row in expected_upload_rows(kind, reference=month_plan.reference):  # type: ignore[arg-type]
        if not row.in_bulletin:
            continue
        measured = _measured(summary, row.org_code)
        assert measured["conformance_rate"] is not None and 0.9 < measured["conformance_rate"] < 1, row.name
        if kind == "hospital":
            assert 0 < measured["outpatient_visits"] < 0.15 * row.records_uploaded, row.name
            assert 0 < measured["discharges"] < measured["outpatient_visits"], row.name
            assert measured["ehr_basic_cumulative"] == 0, row.name
        else:
            assert measured["documents_uploaded"] == 0, row.name


def test_declared_coverage_follows_from_reference_and_uploads(summary: StreamSummary, month_plan: MonthPlan) -> None:
    # The expected declared coverage is uploaded / declared (printed cells): true only if every
    # table an institution uploads is one it declared. The stream and the reference CSV say so.
    declared: dict[str, set[str]] = {}
    for row in read_csv("declarations.csv"):
        declared.setdefault(row["org_code"], set()).add(row["table_code"])
    for kind in ("district", "hospital"):
        for row in expected_upload_rows(kind, reference=month_plan.reference):  # type: ignore[arg-type]
            tables = summary.uploads[row.org_code].tables if row.org_code in summary.uploads else set()
            if row.org_code not in declared:
                assert row.declared_coverage_rate is None
                continue
            assert tables <= declared[row.org_code], row.name
            assert row.declared_coverage_rate == Fraction(
                len(declared[row.org_code] & tables), len(declared[row.org_code])
            )


def test_every_kiosk_figure_is_reproduced_exactly(summary: StreamSummary, month_plan: MonthPlan) -> None:
    rows = expected_kiosk_rows(month_plan.reference)
    for row in rows[:-1]:
        assert row.org_code is not None
        got = summary.kiosks.get(row.org_code)
        measured = (
            (got.registrations, got.registration_amount, got.payments, got.payment_amount) if got else (0, 0, 0, 0)
        )
        assert measured == (row.registrations, row.registration_amount, row.payments, row.payment_amount), row.name
    total = rows[-1]
    assert total.group == "total"
    assert sum(k.payments for k in summary.kiosks.values()) == total.payments == 467_181
    assert sum(k.registrations for k in summary.kiosks.values()) == total.registrations == 637_297
    assert sum((k.payment_amount for k in summary.kiosks.values()), Decimal(0)) == Decimal("185976917.64")
    assert sum((k.registration_amount for k in summary.kiosks.values()), Decimal(0)) == Decimal("14815576.37")
    assert total.payment_amount == Decimal("185976917.64")
    assert total.kiosks == 1502


def test_missing_upload_alerts_follow_from_the_stream(summary: StreamSummary, month_plan: MonthPlan) -> None:
    alerted = 0
    for day in (date(2020, 4, 1) + timedelta(days=n) for n in range(30)):
        before = {day - timedelta(days=n) for n in range(1, 8)}
        missing = sorted(
            org for org, figures in summary.uploads.items() if day not in figures.all_days and before & figures.all_days
        )
        assert expected_missing_uploads(day, month_plan) == missing, day
        alerted += len(missing)
    # The outages of the story: 高淳区 from 8 April, the weekends of 秦淮区, ...
    assert "D320118" in expected_missing_uploads(date(2020, 4, 8), month_plan)
    assert alerted > 20
    with pytest.raises(ValueError, match="April"):
        expected_missing_uploads(date(2020, 5, 1), month_plan)


def test_stream_size_is_what_the_plan_says(summary: StreamSummary, month_plan: MonthPlan) -> None:
    assert summary.events["upload"] == month_plan.upload_events
    assert summary.events["kiosk"] == month_plan.kiosk_events
    assert sum(summary.duplicates.values()) == month_plan.duplicate_events
    assert 50_000 <= summary.events["upload"] <= 100_000
    assert 637_297 + 467_181 < summary.events["kiosk"] < 1_120_000
    assert summary.bad_event_ids == 0


def test_duplicates_are_identical_and_some_come_in_a_later_batch(summary: StreamSummary) -> None:
    assert summary.duplicates["upload"] > 0
    assert summary.duplicates["kiosk"] > 0
    assert summary.duplicates_in_later_batch > 0
    assert summary.differing_duplicates == 0


def test_events_near_midnight_on_both_sides(summary: StreamSummary) -> None:
    for key in ("upload before", "upload after", "kiosk before", "kiosk after"):
        assert summary.near_midnight[key] > 0, key


def test_out_of_order_and_late_events(summary: StreamSummary) -> None:
    for kind in ("upload", "kiosk"):
        assert summary.out_of_order[kind] > 0, kind
        assert summary.arrived_days_late[kind] > 0, kind
    assert summary.realtime_uploaded_days_after_business_date > 0


def test_both_channels_and_batches_across_the_month_boundaries(summary: StreamSummary) -> None:
    assert summary.modes["realtime"] > 10_000
    assert summary.modes["scheduled"] > 10_000
    assert summary.batch_march_31_in_april > 0
    assert summary.batch_april_30_in_may > 0


def test_liveness_events_and_events_outside_april_count_for_nothing(summary: StreamSummary) -> None:
    assert summary.liveness > 0
    assert summary.kiosk_outside_april > 0


def test_the_same_event_id_at_two_institutions_counts_at_each(summary: StreamSummary) -> None:
    assert summary.shared_event_ids > 0


def test_other_offsets_make_a_utc_or_text_date_reading_wrong(summary: StreamSummary) -> None:
    assert len([o for o in summary.offsets if o != "+08:00"]) >= 3
    records = {org: figures.records for org, figures in summary.uploads.items()}
    assert any(summary.utc_records[org] != n for org, n in records.items())
    assert any(summary.text_date_records[org] != n for org, n in records.items())
    transactions = {org: k.registrations + k.payments for org, k in summary.kiosks.items()}
    assert any(summary.utc_kiosk_transactions[org] != n for org, n in transactions.items())


def test_generation_is_deterministic_and_seeded(month_plan: MonthPlan) -> None:
    first = list(itertools.islice(month_plan.events(), 3_000))
    again = list(itertools.islice(generate_month(), 3_000))
    other = list(itertools.islice(plan_month(seed=7).events(), 3_000))
    assert first == again
    assert first != other


def test_events_are_valid_for_the_contract_models(month_plan: MonthPlan) -> None:
    streams = pytest.importorskip("services.streams").STREAMS
    sample = list(itertools.islice(month_plan.events(), 0, 120_000, 7))
    uploads: list[Any] = [event for kind, event in sample if kind == "upload"]
    kiosk: list[Any] = [event for kind, event in sample if kind == "kiosk"]
    assert uploads
    assert kiosk
    for start in range(0, len(uploads), 1_000):
        assert streams["upload"].validate(uploads[start : start + 1_000])[1] == []
    for start in range(0, len(kiosk), 1_000):
        assert streams["kiosk"].validate(kiosk[start : start + 1_000])[1] == []
    assert all(isinstance(e["amount"], str) and e["amount"][-3] == "." for e in kiosk)


@pytest.mark.parametrize(
    ("total", "weights"),
    [(10, [1, 1, 1]), (7, [0, 5, 0, 5]), (1_000_003, [3, 1, 4, 1, 5, 9, 2, 6]), (0, [1, 2]), (5, [1] * 9)],
)
def test_apportion_is_exact_and_proportional(total: int, weights: list[int]) -> None:
    parts = apportion(total, weights)
    assert sum(parts) == total
    assert all(p == 0 for p, w in zip(parts, weights, strict=True) if w == 0)
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - total * weight / sum(weights)) < 1


def test_stamp_writes_the_same_instant_in_other_offsets() -> None:
    # 2020-05-01 00:00:30 in Shanghai: in UTC and in New York it is still 30 April.
    local = (31 + 29 + 31 + 30) * 86_400 + 30
    assert stamp(local) == "2020-05-01T00:00:30+08:00"
    assert stamp(local, 0) == "2020-04-30T16:00:30+00:00"
    assert stamp(local, -240) == "2020-04-30T12:00:30-04:00"
    assert stamp(local, 540) == "2020-05-01T01:00:30+09:00"
