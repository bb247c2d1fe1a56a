"""End to end: HTTP → collector → Kafka → aggregator → TimescaleDB → report API."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest.mock import ANY
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from tests.fixtures.events import REFERENCE, load_reference, random_stream, upload
from tests.fixtures.stack import admin_headers, count_events, wait_for

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Category of a table → the cumulative figure it feeds.
EHR = {
    "ehr_basic": "ehr_basic_cumulative",
    "ehr_hypertension": "ehr_hypertension_cumulative",
    "ehr_diabetes": "ehr_diabetes_cumulative",
}


async def _post(client: httpx.AsyncClient, path: str, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 1000):
        response = await client.post(path, json={"events": events[start : start + 1000]}, headers=admin_headers())
        assert response.status_code == 202, response.text


async def _all_applied(db: asyncpg.Connection, expected: int) -> None:
    async def done() -> bool:
        return await count_events(db) >= expected

    await wait_for(done, f"{expected} distinct events stored")


def _local(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp).astimezone(SHANGHAI)


def _once(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each (org_code, event_id) once, the first copy kept."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        first.setdefault((event["org_code"], event["event_id"]), event)
    return list(first.values())


def _timeliness(first: dict[tuple[str, str, str], datetime], expected: set[str], days: int) -> dict[str, Any]:
    """Expected slots (table x channel x day of the month; the test set has no no-upload days),
    filled, on time (realtime: on its business day; scheduled: by 06:00 the next day), lags."""
    slots = len(expected) * days
    filled = {"realtime": 0, "scheduled": 0}
    on_time = {"realtime": 0, "scheduled": 0}
    lags: list[float] = []
    for (table, mode, business), arrived in first.items():
        if table not in expected:
            continue
        end = datetime.fromisoformat(business).replace(tzinfo=SHANGHAI) + timedelta(days=1)
        lag = (arrived - end).total_seconds()
        filled[mode] += 1
        on_time[mode] += lag <= (0 if mode == "realtime" else 6 * 3600)
        if mode == "scheduled":
            lags.append(lag)
    lags.sort()

    def rank(share: float) -> float | None:  # nearest rank, in hours to two decimals
        return round(math.floor(lags[math.ceil(share * len(lags)) - 1]) / 3600, 2) if lags else None

    return {
        "expected_slots": slots,
        "reporting_rate_realtime": _rate(filled["realtime"], slots),
        "on_time_rate_realtime": _rate(on_time["realtime"], slots),
        "reporting_rate_scheduled": _rate(filled["scheduled"], slots),
        "on_time_rate_scheduled": _rate(on_time["scheduled"], slots),
        "scheduled_lag_p50_hours": rank(0.5),
        "scheduled_lag_p90_hours": rank(0.9),
    }


def _days_in(month: str) -> int:
    first = datetime.strptime(f"{month}-01", "%Y-%m-%d")
    following = (
        first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
    )
    return (following - first).days


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _expected_uploads(uploads: list[dict[str, Any]], month: str, kind: str) -> list[dict[str, Any]]:
    """The uploads report by the contract's definitions, in plain loops over the posted events."""
    category = {t["table_code"]: t["category"] for t in REFERENCE["tables"]}
    required = sum(1 for t in REFERENCE["tables"] if t["required_for"] in (kind, "both"))
    rows = []
    for inst in REFERENCE["institutions"]:
        if inst["kind"] != kind:
            continue
        org = inst["org_code"]
        declared = {d["table_code"] for d in REFERENCE["declarations"] if d["org_code"] == org}
        required_codes = {t["table_code"] for t in REFERENCE["tables"] if t["required_for"] in (kind, "both")}
        row: dict[str, Any] = {"org_code": org, "name": inst["name"], "kind": kind, "month": month}
        records = documents = outpatient = discharges = 0
        flaws = {"incomplete_records": 0, "nonconforming_records": 0, "unlinked_records": 0}
        first_arrival: dict[tuple[str, str, str], datetime] = {}
        days: set[object] = set()
        tables: set[str] = set()
        cumulative = dict.fromkeys(EHR.values(), 0)
        channels: dict[tuple[str, str], dict[str, int]] = {}
        for e in uploads:
            if e["org_code"] != org:
                continue
            uploaded = _local(e["uploaded_at"])
            counted = e["record_count"]
            if e["business_date"][:7] == month:
                pair = channels.setdefault((e["table_code"], e["business_date"]), {"realtime": 0, "scheduled": 0})
                pair[e["mode"]] += counted
                slot = (e["table_code"], e["mode"], e["business_date"])
                if counted > 0 and (slot not in first_arrival or uploaded < first_arrival[slot]):
                    first_arrival[slot] = uploaded
            if uploaded.strftime("%Y-%m") <= month and category[e["table_code"]] in EHR:
                cumulative[EHR[category[e["table_code"]]]] += counted
            if uploaded.strftime("%Y-%m") != month or counted == 0:
                continue
            records += counted
            documents += e.get("document_count", 0)
            for name in flaws:
                flaws[name] += e.get(name, 0)
            days.add(uploaded.date())
            tables.add(e["table_code"])
            outpatient += counted if category[e["table_code"]] == "outpatient_visit" else 0
            discharges += counted if category[e["table_code"]] == "discharge" else 0
        low = sum(min(p.values()) for p in channels.values() if max(p.values()) > 0)
        high = sum(max(p.values()) for p in channels.values())
        row |= {
            "records_uploaded": records,
            "documents_uploaded": documents,
            "upload_days": len(days),
            "uploaded_tables": len(tables),
            "declared_tables": len(declared) or None,
            "required_tables": required,
            "table_coverage_rate": _rate(len(tables), required),
            "declared_coverage_rate": _rate(len(declared & tables), len(declared)),
            "outpatient_visits": outpatient,
            "discharges": discharges,
            **cumulative,
            "conformance_rate": _rate(low, high),
            "completeness_rate": _rate(records - flaws["incomplete_records"], records),
            "conformity_rate": _rate(records - flaws["nonconforming_records"], records),
            "linkage_rate": _rate(records - flaws["unlinked_records"], records),
            "continuity_rate": _rate(len(days), _days_in(month)) if records else None,
            **_timeliness(first_arrival, declared or required_codes, _days_in(month)),
        }
        rows.append(row)
    return sorted(rows, key=lambda r: (-r["records_uploaded"], r["org_code"]))


def _expected_kiosks(payments: list[dict[str, Any]], month: str) -> list[dict[str, Any]]:
    """The kiosk report by the contract's definitions: hospitals, then districts, then the total."""
    rows: list[dict[str, Any]] = []
    for kind in ("hospital", "district"):
        group = []
        for inst in REFERENCE["institutions"]:
            if inst["kind"] != kind:
                continue
            org = inst["org_code"]
            row: dict[str, Any] = {
                "group": kind,
                "org_code": org,
                "name": inst["name"],
                "kiosks": sum(1 for k in REFERENCE["kiosks"] if k["org_code"] == org),
                "registrations": 0,
                "registration_amount": Decimal(0),
                "payments": 0,
                "payment_amount": Decimal(0),
            }
            for t in payments:
                if t["org_code"] == org and _local(t["occurred_at"]).strftime("%Y-%m") == month:
                    plural = "registrations" if t["kind"] == "registration" else "payments"
                    row[plural] += 1
                    row[f"{t['kind']}_amount"] += Decimal(t["amount"])
            group.append(row)
        rows += sorted(group, key=lambda r: (-r["kiosks"], -r["registrations"], r["org_code"]))
    total: dict[str, Any] = {"group": "total", "org_code": None, "name": ANY}
    for field in ("kiosks", "registrations", "registration_amount", "payments", "payment_amount"):
        total[field] = sum((r[field] for r in rows), Decimal(0) if field.endswith("amount") else 0)
    return [*rows, total]


def _assert_rows(got: list[dict[str, Any]], expected: list[dict[str, Any]], what: str) -> None:
    """Equal row by row; rates to the report's 6 decimal places, amounts as exact decimals."""
    assert [r["org_code"] for r in got] == [r["org_code"] for r in expected], what
    for got_row, want in zip(got, expected, strict=True):
        assert set(got_row) == set(want), what
        for field, value in want.items():
            if isinstance(value, float):
                assert got_row[field] == pytest.approx(value, abs=5e-7), f"{what} {want['org_code']} {field}"
            elif isinstance(value, Decimal):
                assert Decimal(got_row[field]) == value, f"{what} {want['org_code']} {field}"
            else:
                assert got_row[field] == value, f"{what} {want['org_code']} {field}"


async def test_every_metric_matches_the_contract_definitions(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    uploads, payments = random_stream(seed=7)
    await _post(collector, "/v1/uploads", uploads)
    await _post(collector, "/v1/kiosk-transactions", payments)
    unique_uploads, unique_kiosk = _once(uploads), _once(payments)
    await _all_applied(db, len(unique_uploads) + len(unique_kiosk))

    for month in ("2020-03", "2020-04", "2020-05"):
        for kind in ("district", "hospital"):
            got = await aggregator.get(
                "/v1/reports/uploads", params={"month": month, "kind": kind}, headers=admin_headers()
            )
            assert got.status_code == 200, got.text
            _assert_rows(got.json(), _expected_uploads(unique_uploads, month, kind), f"uploads report {month} {kind}")
        got = await aggregator.get("/v1/reports/kiosks", params={"month": month}, headers=admin_headers())
        assert got.status_code == 200, got.text
        _assert_rows(got.json(), _expected_kiosks(unique_kiosk, month), f"kiosk report {month}")
    # The stream must exercise what the definitions distinguish, or the comparison proves little.
    april = _expected_uploads(unique_uploads, "2020-04", "district")
    assert all(r["records_uploaded"] and r["conformance_rate"] is not None for r in april)
    assert all(0 < r["completeness_rate"] < 1 and 0 < r["linkage_rate"] < 1 for r in april)
    assert any(r["continuity_rate"] == 1 for r in april) or any(0 < r["continuity_rate"] < 1 for r in april)
    assert all(0 < r["on_time_rate_scheduled"] < r["reporting_rate_scheduled"] < 1 for r in april)
    assert all(r["scheduled_lag_p90_hours"] > r["scheduled_lag_p50_hours"] for r in april)
    assert any(e["record_count"] == 0 for e in unique_uploads)
    assert len(unique_uploads) < len(uploads) and len(unique_kiosk) < len(payments)


async def test_midnight_in_shanghai_decides_the_day_and_month(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    events = [
        # 2020-04-30 23:59:59 in Shanghai: April, even though it is written in UTC.
        upload(uploaded_at="2020-04-30T15:59:59Z", record_count=3),
        # 2020-05-01 00:00:00 in Shanghai: May, although it is still April 30 in UTC.
        upload(uploaded_at="2020-04-30T16:00:00Z", record_count=5),
        # 2020-04-01 00:00:30 in Shanghai, written as March 31 in UTC: April.
        upload(uploaded_at="2020-03-31T16:00:30+00:00", record_count=7),
    ]
    await _post(collector, "/v1/uploads", events)
    await _all_applied(db, 3)
    rows = {
        m: (
            await aggregator.get(
                "/v1/reports/uploads", params={"month": m, "kind": "district"}, headers=admin_headers()
            )
        ).json()
        for m in ("2020-04", "2020-05")
    }
    d1_april = next(r for r in rows["2020-04"] if r["org_code"] == "D1")
    d1_may = next(r for r in rows["2020-05"] if r["org_code"] == "D1")
    assert (d1_april["records_uploaded"], d1_april["upload_days"]) == (10, 2)
    assert (d1_may["records_uploaded"], d1_may["upload_days"]) == (5, 1)


async def test_duplicates_and_out_of_order_count_once(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    late = upload(uploaded_at="2020-04-02T09:00:00+08:00", record_count=4, mode="scheduled", business_date="2020-04-01")
    early = upload(uploaded_at="2020-04-01T09:00:00+08:00", record_count=6, business_date="2020-04-01")
    # Later event first, then the earlier one, then both again in one batch and once more alone.
    await _post(collector, "/v1/uploads", [late])
    await _post(collector, "/v1/uploads", [early, late, early])
    await _post(collector, "/v1/uploads", [early])
    await _all_applied(db, 2)
    report = (
        await aggregator.get(
            "/v1/reports/uploads", params={"month": "2020-04", "kind": "district"}, headers=admin_headers()
        )
    ).json()
    d1 = next(r for r in report if r["org_code"] == "D1")
    assert d1["records_uploaded"] == 10
    assert d1["upload_days"] == 2
    assert d1["conformance_rate"] == pytest.approx(4 / 6, abs=1e-4)
    assert await db.fetchval("SELECT count(*) FROM upload_events") == 2
