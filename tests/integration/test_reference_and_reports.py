"""Reference data loading and report access through the HTTP APIs."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from tests.fixtures.events import kiosk, load_reference, upload
from tests.fixtures.stack import admin_headers, count_events, wait_for

pytestmark = pytest.mark.integration


async def test_reference_load_is_versioned_idempotent_and_refuses_dangling_references(
    collector: httpx.AsyncClient, db: asyncpg.Connection, reference_body: dict[str, Any]
) -> None:
    first = await collector.put("/v1/admin/reference", json=reference_body, headers=admin_headers())
    assert (first.status_code, first.json()["created"]) == (201, True)
    again = await collector.put("/v1/admin/reference", json=reference_body, headers=admin_headers())
    assert (again.status_code, again.json()["version"]) == (200, first.json()["version"])

    broken = {
        **reference_body,
        "declarations": [*reference_body["declarations"], {"org_code": "ZZ", "table_code": "OPV"}],
    }
    refused = await collector.put("/v1/admin/reference", json=broken, headers=admin_headers())
    assert refused.status_code == 422
    assert any("ZZ" in p for p in refused.json()["problems"])
    assert await db.fetchval("SELECT version FROM reference_current") == first.json()["version"]

    changed = {**reference_body, "kiosks": reference_body["kiosks"][:1]}
    second = await collector.put("/v1/admin/reference", json=changed, headers=admin_headers())
    assert (second.status_code, second.json()["version"]) == (201, first.json()["version"] + 1)
    assert await db.fetchval("SELECT count(*) FROM cur_kiosks") == 1
    assert await db.fetchval("SELECT count(*) FROM ref_kiosks") == 4  # old version kept
    audit = await db.fetch("SELECT action FROM admin_audit ORDER BY id")
    assert [r["action"] for r in audit] == ["reference.load"] * 3  # every admin action, the no-op too


async def test_institution_token_reads_only_its_own_rows_and_csv_matches_json(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    posted = [upload(org_code="D1"), upload(org_code="D2", record_count=99)]
    assert (await collector.post("/v1/uploads", json={"events": posted}, headers=admin_headers())).status_code == 202
    assert (
        await collector.post("/v1/kiosk-transactions", json=kiosk(amount="0.10"), headers=admin_headers())
    ).status_code == 202

    async def stored() -> bool:
        return await count_events(db) == 3

    await wait_for(stored, "3 events stored")
    issued = (await collector.post("/v1/admin/tokens", json={"org_code": "D1"}, headers=admin_headers())).json()
    d1 = {"Authorization": f"Bearer {issued['token']}"}

    async def token_known() -> bool:
        response = await aggregator.get(
            "/v1/reports/uploads", params={"month": "2020-04", "kind": "district"}, headers=d1
        )
        return response.status_code == 200

    await wait_for(token_known, "aggregator learned the new token")
    own = (
        await aggregator.get("/v1/reports/uploads", params={"month": "2020-04", "kind": "district"}, headers=d1)
    ).json()
    assert [r["org_code"] for r in own] == ["D1"]
    every = (
        await aggregator.get(
            "/v1/reports/uploads", params={"month": "2020-04", "kind": "district"}, headers=admin_headers()
        )
    ).json()
    assert [r["org_code"] for r in every] == ["D2", "D1"]  # most records first

    csv_text = (
        await aggregator.get(
            "/v1/reports/kiosks", params={"month": "2020-04", "format": "csv"}, headers=admin_headers()
        )
    ).text
    lines = csv_text.splitlines()
    assert lines[0].split(",")[:4] == ["group", "org_code", "name", "kiosks"]
    assert lines[-1].endswith(",0.00,1,0.10")
    kiosks_d1 = (await aggregator.get("/v1/reports/kiosks", params={"month": "2020-04"}, headers=d1)).json()
    assert [r["org_code"] for r in kiosks_d1] == ["D1", None]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/reports/uploads", {"month": "2020-13", "kind": "district"}),
        ("/v1/reports/uploads", {"month": "2020-04", "kind": "clinic"}),
        ("/v1/reports/uploads", {"kind": "district"}),
        ("/v1/reports/kiosks", {"month": "April"}),
        ("/v1/alerts/missing-uploads", {"date": "2020-04-31"}),
    ],
)
async def test_bad_report_parameters_are_422(aggregator: httpx.AsyncClient, path: str, params: dict[str, str]) -> None:
    response = await aggregator.get(path, params=params, headers=admin_headers())
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"


async def test_missing_uploads_lists_institutions_silent_on_the_day(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    events = [
        upload(org_code="D1", uploaded_at="2020-04-08T10:00:00+08:00"),
        upload(org_code="D1", uploaded_at="2020-04-09T10:00:00+08:00"),
        upload(org_code="D2", uploaded_at="2020-04-09T10:00:00+08:00"),
        upload(org_code="D2", uploaded_at="2020-04-10T00:00:01+08:00"),
        upload(org_code="H1", uploaded_at="2020-04-01T10:00:00+08:00"),  # 9 days before: not expected
    ]
    assert (await collector.post("/v1/uploads", json={"events": events}, headers=admin_headers())).status_code == 202

    async def stored() -> bool:
        return await count_events(db) == 5

    await wait_for(stored, "5 events stored")
    rows = (
        await aggregator.get("/v1/alerts/missing-uploads", params={"date": "2020-04-10"}, headers=admin_headers())
    ).json()
    assert [(r["org_code"], r["last_upload_day"], r["active_days_in_previous_7"]) for r in rows] == [
        ("D1", "2020-04-09", 2)
    ]
