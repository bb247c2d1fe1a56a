"""Expected report rows: bulletin cells where printed, the documented exceptions, the checkers."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from services.demo.bulletin import BULLETIN_DIR, load_bulletin
from services.demo.expected import (
    CHANNELS,
    DEVIATIONS,
    ExpectedKioskRow,
    ExpectedUploadRow,
    compare_appointment_report,
    compare_hotline_report,
    compare_kiosk_report,
    compare_remote_report,
    compare_upload_report,
    expected_appointments,
    expected_hotline,
    expected_kiosk_rows,
    expected_remote_platforms,
    expected_upload_rows,
)
from services.demo.reference import org_code_of
from tests.fixtures.streams_fold import StreamsFold, reference_rows


def _report_row(row: ExpectedUploadRow) -> dict[str, Any]:
    """The row as the platform's JSON report would show it: rates as floats."""
    out: dict[str, Any] = {}
    for name in ExpectedUploadRow.__slots__:
        value = getattr(row, name)
        out[name] = float(value) if isinstance(value, Fraction) else value
    return out


def _kiosk_report_row(row: ExpectedKioskRow) -> dict[str, Any]:
    return {name: str(getattr(row, name)) if name.endswith("amount") else getattr(row, name) for name in row.__slots__}


def test_district_rows_are_the_bulletin_cells() -> None:
    rows = {r.org_code: r for r in expected_upload_rows("district")}
    assert len(rows) == 12
    for cells in load_bulletin().districts:
        row = rows[org_code_of(cells.unit)]
        for name in row.from_bulletin:
            assert getattr(row, name) == getattr(cells, name), (cells.unit, name)
        assert row.table_coverage_rate == Fraction(cells.uploaded_tables, 129)
        assert row.declared_coverage_rate == Fraction(cells.uploaded_tables, cells.declared_tables or 1)
        # Not printed: not known, not checked.
        assert (row.conformance_rate, row.documents_uploaded) == (None, None)
        assert not {"conformance_rate", "documents_uploaded"} & row.checked


def test_unprinted_figures_come_only_from_the_callers_fold() -> None:
    measured = {"D320115": {"conformance_rate": Fraction(97, 100), "documents_uploaded": 0, "records_uploaded": 1}}
    rows = {r.org_code: r for r in expected_upload_rows("district", measured=measured)}
    jiangning = rows["D320115"]
    assert (jiangning.conformance_rate, jiangning.documents_uploaded) == (Fraction(97, 100), 0)
    assert {"conformance_rate", "documents_uploaded"} <= jiangning.checked
    # A printed cell stays the printed cell, whatever a fold says.
    assert jiangning.records_uploaded == 7_563_186
    assert rows["D320106"].conformance_rate is None


def test_hospital_rows_list_every_hospital_with_the_bulletin_first() -> None:
    rows = expected_upload_rows("hospital")
    assert len(rows) == 48
    assert [r.in_bulletin for r in rows] == [True] * 25 + [False] * 23
    records = [r.records_uploaded for r in rows]
    assert records == sorted(records, reverse=True)
    undeclared = [r for r in rows if r.in_bulletin and r.declared_tables is None]
    assert len(undeclared) == 8
    assert all(r.declared_coverage_rate is None for r in undeclared)
    assert all(r.records_uploaded == 0 and r.conformance_rate is None for r in rows if not r.in_bulletin)
    printed = [r for r in rows if r.in_bulletin]
    assert all(r.outpatient_visits is None and "outpatient_visits" not in r.checked for r in printed)


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


def test_a_matching_upload_report_passes_and_each_difference_is_named() -> None:
    measured = {code: {"conformance_rate": Fraction(9, 10)} for code in ("D320115", "D320116", "D320118")}
    expected = expected_upload_rows("district", measured=measured)
    report = [_report_row(r) for r in expected]
    assert compare_upload_report(expected, report) == []
    report[3]["records_uploaded"] -= 1
    report[2]["conformance_rate"] = 0.5  # 高淳区: measured, so checked
    report[5]["conformance_rate"] = 0.5  # not measured: not checked
    del report[7]
    problems = compare_upload_report(expected, report)
    assert any("records_uploaded" in p for p in problems)
    assert [p for p in problems if "conformance_rate" in p] == [
        "D320118 高淳区: conformance_rate is 0.5, expected 9/10"
    ]
    assert any("missing from the report" in p for p in problems)
    assert len(problems) == 3


def test_upload_report_order_and_omitted_zero_rows() -> None:
    expected = expected_upload_rows("hospital")
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
def test_a_rate_is_compared_with_tolerance_only_when_it_is_a_number(value: object) -> None:
    expected = expected_upload_rows("district")[:1]
    report = [_report_row(expected[0]) | {"table_coverage_rate": value}]
    assert any("table_coverage_rate" in p for p in compare_upload_report(expected, report))


# --- revision 2: the expected sections are the printed cells, and a report folded by the
# tests from the stream and the reference CSV files passes every checker ------------------


def _printed(name: str) -> list[dict[str, str]]:
    with (BULLETIN_DIR / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_expected_appointments_are_the_printed_cells() -> None:
    expected = expected_appointments()
    rows = _printed("appointments_2020-04.csv")
    assert [(r.name, r.online_12320, r.phone, r.in_clinic, r.third_party, r.subtotal) for r in expected.rows][:2] == [
        ("南京市儿童医院", 7220, 44374, 94274, 31087, 176955),
        ("南京鼓楼医院", 46653, 14210, 24369, 28638, 113870),
    ]
    assert len(expected.rows) == len(rows) - 1 == 36
    for want, row in zip(expected.rows, rows, strict=False):
        assert [getattr(want, c) for c in (*CHANNELS, "subtotal")] == [int(row[c]) for c in (*CHANNELS, "subtotal")], (
            row["unit"]
        )
    assert expected.total.subtotal == int(rows[-1]["subtotal"]) == 356_355
    assert expected.appointments_cumulative == 19_238_954
    assert [(p.name, p.appointments) for p in expected.platforms] == [
        (r["platform"], int(r["appointments"])) for r in _printed("appointment_platforms_2020-04.csv")[:-1]
    ]
    assert expected.platforms_total == 98_432


def test_expected_hotline_and_remote_figures_are_the_printed_cells() -> None:
    hotline = expected_hotline()
    calls = {r.name: r.figures["calls"] for r in hotline.rows}
    assert calls == {f"{r['city']}12320": int(r["calls"]) for r in _printed("hotline_province_2020-04.csv")[:-1]}
    nanjing = next(r for r in hotline.rows if r.name == "南京12320")
    assert nanjing.figures == {r["figure"]: int(r["value"]) for r in _printed("hotline_2020-04.csv")}
    assert all(set(r.figures) == {"calls"} for r in hotline.rows if r is not nanjing)
    assert hotline.total_calls == 179_331
    remote = {p.platform: p for p in expected_remote_platforms()}
    for row in _printed("remote_platforms_2020-04.csv"):
        assert remote[row["platform"]].printed[row["figure"]] == int(row["value"]), row["printed_as"]
    assert remote["imaging"].top_uploaders[0] == ("D320105", "建邺区", 10_824)
    assert remote["imaging"].top_uploaders[2] == ("H0048", "南京市六合区中医院", 7_131)
    assert remote["consultation"].top_uploaders == ()


def _appointment_report(streams: StreamsFold, names: dict[str, str]) -> dict[str, Any]:
    rows = [
        {"org_code": org, "name": names[org], **{c: counts[c] for c in CHANNELS}, "subtotal": counts.total()}
        for org, counts in streams.appointments.items()
    ]
    balance = next(int(b["value"]) for b in reference_rows("opening_balances.csv") if b["metric"] == "appointments")
    platforms = {p["platform_code"]: p["name"] for p in reference_rows("booking_platforms.csv")}
    return {
        "rows": rows,
        "total": {c: sum(r[c] for r in rows) for c in (*CHANNELS, "subtotal")},
        "appointments_cumulative": balance + sum(r["subtotal"] for r in rows),
        "platforms": [
            {"platform_code": code, "name": platforms[code], "appointments": n}
            for code, n in streams.platform_bookings.most_common()
        ],
        "platforms_total": sum(streams.platform_bookings.values()),
    }


def _hotline_report(streams: StreamsFold, institutions: dict[str, dict[str, str]]) -> dict[str, Any]:
    rows = [
        {"org_code": org, "name": institutions[org]["name"], "city": institutions[org]["city"], **figures}
        for org, figures in sorted(streams.hotline.items(), key=lambda item: -item[1]["calls"])
    ]
    return {"rows": rows, "total": {"calls": sum(r["calls"] for r in rows)}}


VOLUMES = ("consultations", "cases", "reports", "specimens", "images")


def _remote_report(streams: StreamsFold, institutions: dict[str, dict[str, str]]) -> dict[str, Any]:
    april_end = date(2020, 4, 30)
    connected: dict[str, set[str]] = {}
    for row in reference_rows("platform_connections.csv"):
        end = date.fromisoformat(row["disconnected_on"]) if row["disconnected_on"] else None
        if date.fromisoformat(row["connected_on"]) <= april_end and (end is None or end > april_end):
            connected.setdefault(row["platform"], set()).add(row["org_code"])
    consultations = next(
        int(b["value"]) for b in reference_rows("opening_balances.csv") if b["metric"] == "remote_consultations"
    )
    platforms = []
    for platform, members in connected.items():
        people = [institutions[code] for code in members]
        city = [m for m in people if (m["region"] or "city") == "city"]
        by = Counter((m["region"] or "city", m["level"] or None) for m in people)
        top = sorted(streams.remote_by_org[platform].items(), key=lambda item: (-item[1], item[0]))[:3]
        platforms.append(
            {
                "platform": platform,
                "connected": len(people),
                "cities": len({m["city"] for m in people if m["city"]}),
                "districts": len({m["district"] for m in city if m["district"]}),
                "districts_primary": len({m["district"] for m in city if m["district"] and m["level"] == "primary"}),
                "by_region_level": [{"region": r, "level": lv, "count": n} for (r, lv), n in by.items()],
                **{
                    key: streams.remote[platform][key]
                    for key in ("consultations", "cases", "reports", "specimens", "images")
                },
                "consultations_cumulative": consultations + streams.remote["consultation"]["consultations"]
                if platform == "consultation"
                else None,
                "top_uploaders": [
                    {"org_code": org, "name": institutions[org]["name"], "value": value}
                    for org, value in (top if platform != "consultation" else [])
                ],
            }
        )
    return {"platforms": platforms}


def test_reports_folded_from_the_stream_pass_every_checker(streams: StreamsFold) -> None:
    institutions = {i["org_code"]: i for i in reference_rows("institutions.csv")}
    names = {code: i["name"] for code, i in institutions.items()}
    assert compare_appointment_report(expected_appointments(), _appointment_report(streams, names)) == []
    assert compare_hotline_report(expected_hotline(), _hotline_report(streams, institutions)) == []
    assert compare_remote_report(expected_remote_platforms(), _remote_report(streams, institutions)) == []


def test_each_checker_names_what_differs(streams: StreamsFold) -> None:
    institutions = {i["org_code"]: i for i in reference_rows("institutions.csv")}
    names = {code: i["name"] for code, i in institutions.items()}
    report = _appointment_report(streams, names)
    report["rows"][0]["phone"] += 1
    report["platforms"].reverse()
    report["appointments_cumulative"] = 356_355  # without the opening balance
    problems = compare_appointment_report(expected_appointments(), report)
    assert any(": phone is " in p for p in problems)
    assert "platforms are not sorted by appointments descending" in problems
    assert any(p.startswith("total to date: appointments_cumulative is 356355") for p in problems)
    report = _hotline_report(streams, institutions)
    report["rows"] = report["rows"][1:]
    assert compare_hotline_report(expected_hotline(), report) == ["L3201 南京12320: missing from the report"]
    report = _remote_report(streams, institutions)
    ecg = next(p for p in report["platforms"] if p["platform"] == "ecg")
    ecg["by_region_level"].append({"region": "city", "level": "tertiary", "count": 1})  # a 13th tertiary
    ecg["top_uploaders"].reverse()
    problems = compare_remote_report(expected_remote_platforms(), report)
    assert any(p.startswith("ecg: city_tertiary is 13, expected 12") for p in problems)
    assert any(p.startswith("ecg: top_uploaders are") for p in problems)
    assert len(problems) == 2
