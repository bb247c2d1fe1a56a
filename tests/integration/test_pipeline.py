"""End to end: HTTP → collector → Kafka → aggregator → TimescaleDB → report API."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from services.contract.models import InstitutionKind, RequiredFor, TableCategory
from services.reports.reference import Institution, ReferenceView
from services.streams import STREAMS, ConsumedEvent
from services.streams.kiosk.model import KioskTransaction
from services.streams.kiosk.report import kiosk_inputs_from_deltas, kiosk_report
from services.streams.rollups import Deltas
from services.streams.uploads.model import UploadEvent
from services.streams.uploads.report import inputs_from_deltas, upload_report
from tests.fixtures.events import REFERENCE, load_reference, random_stream, upload
from tests.fixtures.stack import admin_headers, count_events, wait_for

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")


async def _post(client: httpx.AsyncClient, path: str, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 1000):
        response = await client.post(path, json={"events": events[start : start + 1000]}, headers=admin_headers())
        assert response.status_code == 202, response.text


async def _all_applied(db: asyncpg.Connection, expected: int) -> None:
    async def done() -> bool:
        return await count_events(db) >= expected

    await wait_for(done, f"{expected} distinct events stored")


def fold(uploads: Any, kiosk: Any, zone: ZoneInfo, received_at: datetime) -> Deltas:
    deltas = Deltas()
    for name, events in (("upload", uploads), ("kiosk", kiosk)):
        STREAMS[name].fold([ConsumedEvent(e, received_at, 0, n) for n, e in enumerate(events)], zone, deltas)
    return deltas


def _reference_view() -> ReferenceView:
    declarations: dict[str, set[str]] = {}
    for d in REFERENCE["declarations"]:
        declarations.setdefault(d["org_code"], set()).add(d["table_code"])
    kiosks: dict[str, int] = {}
    for k in REFERENCE["kiosks"]:
        kiosks[k["org_code"]] = kiosks.get(k["org_code"], 0) + 1
    return ReferenceView(
        institutions=[
            Institution(i["org_code"], i["name"], InstitutionKind(i["kind"])) for i in REFERENCE["institutions"]
        ],
        table_category={t["table_code"]: TableCategory(t["category"]) for t in REFERENCE["tables"]},
        table_required_for={t["table_code"]: RequiredFor(t["required_for"]) for t in REFERENCE["tables"]},
        declarations={k: frozenset(v) for k, v in declarations.items()},
        kiosks=kiosks,
    )


async def test_every_metric_matches_the_contract_definitions(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    uploads, payments = random_stream(seed=7)
    await _post(collector, "/v1/uploads", uploads)
    await _post(collector, "/v1/kiosk-transactions", payments)
    distinct = len({e["event_id"] for e in uploads}) + len({e["event_id"] for e in payments})
    await _all_applied(db, distinct)

    unique_uploads = {e["event_id"]: UploadEvent.model_validate(e) for e in uploads}
    unique_kiosk = {e["event_id"]: KioskTransaction.model_validate(e) for e in payments}
    deltas = fold(unique_uploads.values(), unique_kiosk.values(), SHANGHAI, datetime.now(UTC))
    ref = _reference_view()
    for month in ("2020-03", "2020-04", "2020-05"):
        first = datetime.strptime(month, "%Y-%m").date()
        inputs = inputs_from_deltas(deltas, first, ref.table_category)
        for kind in InstitutionKind:
            expected = [r.model_dump(mode="json") for r in upload_report(kind, first, inputs, ref)]
            got = await aggregator.get(
                "/v1/reports/uploads", params={"month": month, "kind": kind.value}, headers=admin_headers()
            )
            assert got.status_code == 200, got.text
            assert got.json() == expected, f"uploads report {month} {kind}"
        expected_kiosk = [r.model_dump(mode="json") for r in kiosk_report(kiosk_inputs_from_deltas(deltas, first), ref)]
        got = await aggregator.get("/v1/reports/kiosks", params={"month": month}, headers=admin_headers())
        assert got.json() == expected_kiosk, f"kiosk report {month}"

    april = {
        r["org_code"]: r
        for r in (
            await aggregator.get(
                "/v1/reports/uploads", params={"month": "2020-04", "kind": "district"}, headers=admin_headers()
            )
        ).json()
    }
    # The oracle agrees with the database; check it also agrees with a direct reading of the contract.
    d1_april = [
        e
        for e in unique_uploads.values()
        if e.org_code == "D1" and e.uploaded_at.astimezone(SHANGHAI).strftime("%Y-%m") == "2020-04"
    ]
    assert april["D1"]["records_uploaded"] == sum(e.record_count for e in d1_april)
    assert april["D1"]["upload_days"] == len(
        {e.uploaded_at.astimezone(SHANGHAI).date() for e in d1_april if e.record_count > 0}
    )
    assert april["D1"]["uploaded_tables"] == len({e.table_code for e in d1_april if e.record_count > 0})
    total = sum(
        (e.amount for e in unique_kiosk.values() if e.occurred_at.astimezone(SHANGHAI).strftime("%Y-%m") == "2020-04"),
        Decimal("0"),
    )
    kiosk_rows = (
        await aggregator.get("/v1/reports/kiosks", params={"month": "2020-04"}, headers=admin_headers())
    ).json()
    assert Decimal(kiosk_rows[-1]["registration_amount"]) + Decimal(kiosk_rows[-1]["payment_amount"]) == total


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
