"""Remote-platform uploads end to end: HTTP → collector → Kafka → aggregator → TimescaleDB → report, bulletin.

The expected figures are `tests.fixtures.remote.expected_report`, a plain fold of the contract's
definitions over the posted events and the reference rows, never the platform's report code.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest

from services.aggregator.rebuild import rebuild_rollups
from tests.fixtures.cli import run_telemetry
from tests.fixtures.remote import (
    expected_report,
    expected_unconnected,
    once,
    remote_reference,
    remote_upload,
    remote_uploads,
)
from tests.fixtures.stack import admin_headers, count_events, wait_for
from tests.unit.bulletin.page import parse, problems

pytestmark = pytest.mark.integration
REPORT = "/v1/reports/remote-platforms"


async def _load(collector: httpx.AsyncClient, db: asyncpg.Connection) -> list[dict[str, Any]]:
    """The reference set and the month's uploads, posted (duplicates and all) and applied."""
    response = await collector.put("/v1/admin/reference", json=remote_reference(), headers=admin_headers())
    assert response.status_code in (200, 201), response.text
    events = remote_uploads()
    for start in range(0, len(events), 7):  # several requests, the resent copies among them
        response = await collector.post(
            "/v1/remote-uploads", json={"events": events[start : start + 7]}, headers=admin_headers()
        )
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": len(events[start : start + 7])}
    distinct = len(once(events))

    async def applied() -> bool:
        return await count_events(db) >= distinct

    await wait_for(applied, f"{distinct} remote uploads applied")
    assert await count_events(db) == distinct < len(events)
    return events


async def _token(collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, org: str) -> dict[str, str]:
    issued = (await collector.post("/v1/admin/tokens", json={"org_code": org}, headers=admin_headers())).json()
    headers = {"Authorization": f"Bearer {issued['token']}"}

    async def known() -> bool:
        return (await aggregator.get(REPORT, params={"month": "2020-04"}, headers=headers)).status_code == 200

    await wait_for(known, "aggregator learned the new token")
    return headers


async def test_the_report_follows_the_contract_month_by_month(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    events = await _load(collector, db)
    body = remote_reference()
    for month in ("2020-03", "2020-04", "2020-05"):
        response = await aggregator.get(REPORT, params={"month": month}, headers=admin_headers())
        assert response.status_code == 200, response.text
        assert response.json() == expected_report(body, events, month), month
    # Every upload is in a raw row; rebuilding the rollups from them gives the same figures.
    assert await db.fetchval("SELECT count(*) FROM remote_upload_events") == len(once(events))
    await rebuild_rollups(db, "Asia/Shanghai")
    rebuilt = await aggregator.get(REPORT, params={"month": "2020-04"}, headers=admin_headers())
    assert rebuilt.json() == expected_report(body, events, "2020-04")


async def test_an_institution_token_sees_its_own_figures_only(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    events = await _load(collector, db)
    body = remote_reference()
    for org in ("H1", "C1"):
        headers = await _token(collector, aggregator, org)
        response = await aggregator.get(REPORT, params={"month": "2020-04"}, headers=headers)
        assert response.json() == expected_report(body, events, "2020-04", org), org
        own = next(i["name"] for i in body["institutions"] if i["org_code"] == org)
        # (甲区 is a district's name and part of C1's own, 甲区社区卫生服务中心.)
        others = {i["name"] for i in body["institutions"] if i["org_code"] != org and i["name"] not in own}
        assert [name for name in others if name in response.text] == [], response.text
        page = (await aggregator.get("/v1/reports/bulletin", params={"month": "2020-04"}, headers=headers)).text
        assert [name for name in others if name in page] == []
        assert set(problems(parse(page))) <= {org}


async def test_the_bulletin_prints_the_figures_and_lists_the_uploads_not_connected(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    events = await _load(collector, db)
    body = remote_reference()
    want = {p["platform"]: p for p in expected_report(body, events, "2020-04")["platforms"]}
    html = (await aggregator.get("/v1/reports/bulletin", params={"month": "2020-04"}, headers=admin_headers())).text
    page = parse(html)
    section = page.by_id("remote-platforms")
    for paragraph in section.iter("p"):
        platform = paragraph.attrs.get("data-platform")
        if platform is None:
            continue
        for span in paragraph.iter("span"):
            figure = span.attrs["data-figure"]
            if figure in want[platform] and figure != "top_uploaders":
                assert span.text() == str(want[platform][figure]), (platform, figure)
    top = [tr for table in section.iter("table") for tr in table.iter("tr") if "data-org-code" in tr.attrs]
    assert [tr.attrs["data-org-code"] for tr in top] == [
        t["org_code"] for p in want.values() for t in p["top_uploaders"]
    ]
    listed = {
        org for org, found in problems(page).items() if any(c == "unconnected_remote_upload" for c, _, _ in found)
    }
    assert listed == {org for org, _ in expected_unconnected(body, events, "2020-04")}
    assert {"C1", "C2", "A1", "H1"} <= listed  # connected after the month, ended on its last day, re-connected later


async def test_counts_the_platform_does_not_have_are_422_and_nothing_is_kept(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await collector.put("/v1/admin/reference", json=remote_reference(), headers=admin_headers())
    assert response.status_code in (200, 201), response.text
    good = remote_upload("H1", "ecg", "2020-04-10T10:00:00+08:00", "ok-1", cases=1)
    bad = [
        ({"reports": 1}, ["counts.reports"]),  # a lab count, sent to the ECG platform
        ({"cases": 1, "images": 3, "specimens": 1}, ["counts.images", "counts.specimens"]),
        ({}, ["counts"]),
        ({"cases": 10_000_001}, ["counts.cases"]),
        ({"cases": -1}, ["counts.cases"]),
        ({"cases": "1"}, ["counts.cases"]),
    ]
    batch = [good, *({**good, "event_id": f"bad-{n}", "counts": counts} for n, (counts, _) in enumerate(bad))]
    response = await collector.post("/v1/remote-uploads", json={"events": batch}, headers=admin_headers())
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_events"
    expected = [(index, field) for index, (_, fields) in enumerate(bad, start=1) for field in fields]
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == expected
    # The good event alone is accepted; only it is ever applied.
    assert (await collector.post("/v1/remote-uploads", json=good, headers=admin_headers())).status_code == 202

    async def applied() -> bool:
        return await count_events(db) >= 1

    await wait_for(applied, "the good upload applied")
    assert await db.fetchval("SELECT array_agg(event_id) FROM remote_upload_events") == ["ok-1"]


@pytest.mark.parametrize(
    ("params", "status"), [({"month": "2020-13"}, 422), ({"month": "2020-04", "format": "csv"}, 422), ({}, 422)]
)
async def test_bad_report_parameters_are_422(
    aggregator: httpx.AsyncClient, params: dict[str, str], status: int
) -> None:
    response = await aggregator.get(REPORT, params=params, headers=admin_headers())
    assert response.status_code == status, response.text
    assert response.json()["error"] == "invalid_request"


async def _command(database_url: str, *args: str) -> tuple[int, str]:
    return await run_telemetry(
        *args, env={"TELEMETRY_DATABASE_URL": database_url, "TELEMETRY_TIMEZONE": "Asia/Shanghai"}
    )


async def test_the_command_prints_the_report(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection, database_url: str
) -> None:
    events = await _load(collector, db)
    code, output = await _command(database_url, "report", "remote-platforms", "--month", "2020-04", "--format", "json")
    assert code == 0, output
    assert json.loads(output) == expected_report(remote_reference(), events, "2020-04")
    code, output = await _command(database_url, "report", "remote-platforms", "--month", "2020-04")
    assert code == 0, output
    assert "马鞍山某医院" in output  # the top uploaders table
    code, output = await _command(database_url, "report", "remote-platforms", "--month", "2020-04", "--format", "csv")
    assert code == 2 and "not one table" in output
