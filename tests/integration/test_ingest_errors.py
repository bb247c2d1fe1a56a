"""Every error status of the contract, each in the one JSON shape, and nothing kept."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry

from services.collector.app import create_app as create_collector
from tests.fixtures.events import kiosk, load_reference, upload
from tests.fixtures.stack import StackConfig, admin_headers, count_events, running, wait_for

pytestmark = pytest.mark.integration


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    return body


async def _nothing_kept_then_marker(
    collector: httpx.AsyncClient, db: asyncpg.Connection, headers: dict[str, str]
) -> None:
    """Post one valid marker event and check it is the only one stored: the refused request left nothing."""
    marker = upload(event_id="marker-1")
    assert (await collector.post("/v1/uploads", json=marker, headers=headers)).status_code == 202

    async def marker_stored() -> bool:
        return await count_events(db) >= 1

    await wait_for(marker_stored, "marker stored")
    await asyncio.sleep(0.3)  # give any wrongly published event time to land too
    assert await db.fetchval("SELECT array_agg(event_id) FROM event_keys") == ["marker-1"]


async def _issue(collector: httpx.AsyncClient, org_code: str) -> tuple[str, str]:
    response = await collector.post("/v1/admin/tokens", json={"org_code": org_code}, headers=admin_headers())
    assert response.status_code == 201, response.text
    body = response.json()
    return body["token_id"], body["token"]


async def test_institution_token_for_another_institution_is_403_and_nothing_kept(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    _, token_d1 = await _issue(collector, "D1")
    headers = {"Authorization": f"Bearer {token_d1}"}
    batch = {"events": [upload(org_code="D1"), upload(org_code="D2")]}
    body = _assert_error(await collector.post("/v1/uploads", json=batch, headers=headers), 403, "forbidden")
    assert "D2" in body["detail"]
    await _nothing_kept_then_marker(collector, db, headers)


async def test_batch_with_one_bad_event_is_422_listing_it_and_nothing_kept(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    events = [upload(), upload(record_count=-1), upload(), upload(table_code="NOPE"), upload()]
    response = await collector.post("/v1/uploads", json={"events": events}, headers=admin_headers())
    body = _assert_error(response, 422, "invalid_events")
    assert {(e["index"], e["field"]) for e in body["errors"]} == {(1, "record_count")}
    # Reference problems are reported once the shape is right, with their index too.
    events[1]["record_count"] = 1
    body = _assert_error(
        await collector.post("/v1/uploads", json={"events": events}, headers=admin_headers()), 422, "invalid_events"
    )
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(3, "table_code")]
    await _nothing_kept_then_marker(collector, db, admin_headers())


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"amount": 12.5}, "amount"),
        ({"amount": "1.234"}, "amount"),
        ({"amount": "-1.00"}, "amount"),
        ({"occurred_at": "2020-04-01T10:00:00"}, "occurred_at"),
        ({"kind": "refund"}, "kind"),
        ({"kiosk_id": "K-D1-1"}, "kiosk_id"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_invalid_kiosk_transactions_are_422_by_field(
    collector: httpx.AsyncClient, bad: dict[str, Any], field: str
) -> None:
    await load_reference(collector, admin_headers())
    response = await collector.post("/v1/kiosk-transactions", json=kiosk(**bad), headers=admin_headers())
    body = _assert_error(response, 422, "invalid_events")
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(0, field)]


async def test_authentication_errors_are_401(collector: httpx.AsyncClient) -> None:
    event = upload()
    _assert_error(await collector.post("/v1/uploads", json=event), 401, "unauthenticated")
    _assert_error(
        await collector.post("/v1/uploads", json=event, headers={"Authorization": "Bearer nope-not-a-token"}),
        401,
        "unauthenticated",
    )
    _assert_error(
        await collector.post("/v1/uploads", json=event, headers={"Authorization": "Basic abc"}), 401, "unauthenticated"
    )


async def test_revoked_token_is_refused_on_the_next_request(collector: httpx.AsyncClient) -> None:
    await load_reference(collector, admin_headers())
    token_id, token = await _issue(collector, "D1")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await collector.post("/v1/uploads", json=upload(), headers=headers)).status_code == 202
    revoked = await collector.delete(f"/v1/admin/tokens/{token_id}", headers=admin_headers())
    assert revoked.status_code == 200
    _assert_error(await collector.post("/v1/uploads", json=upload(), headers=headers), 401, "unauthenticated")
    listed = (await collector.get("/v1/admin/tokens", headers=admin_headers())).json()
    assert [t["token_id"] for t in listed if t["revoked_at"]] == [token_id]
    assert all("token" not in t for t in listed)


async def test_institution_token_cannot_use_admin_endpoints(collector: httpx.AsyncClient) -> None:
    await load_reference(collector, admin_headers())
    _, token = await _issue(collector, "D1")
    headers = {"Authorization": f"Bearer {token}"}
    _assert_error(await collector.post("/v1/admin/tokens", json={"org_code": "D1"}, headers=headers), 403, "forbidden")


async def test_body_errors(collector: httpx.AsyncClient) -> None:
    headers = admin_headers()
    json_headers = {**headers, "Content-Type": "application/json"}
    _assert_error(
        await collector.post("/v1/uploads", content=b"{not json", headers=json_headers), 400, "malformed_body"
    )
    _assert_error(await collector.post("/v1/uploads", content=b"[1, 2]", headers=json_headers), 400, "malformed_body")
    _assert_error(
        await collector.post("/v1/uploads", content=b'{"events": []}', headers=json_headers), 400, "malformed_body"
    )
    _assert_error(
        await collector.post("/v1/uploads", content=b"a=b", headers={**headers, "Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    big = b'{"events": [' + b" " * (1024 * 1024) + b"]}"
    _assert_error(await collector.post("/v1/uploads", content=big, headers=json_headers), 413, "payload_too_large")
    too_many = {"events": [upload() for _ in range(1001)]}
    _assert_error(await collector.post("/v1/uploads", json=too_many, headers=headers), 413, "payload_too_large")


async def test_an_institution_over_its_rate_gets_429_and_others_are_served(
    stack_config: StackConfig,
) -> None:
    app = create_collector(
        stack_config.collector_settings(rate_limit_events_per_s=1, rate_limit_burst_events=3), CollectorRegistry()
    )
    async with running(app, "http://collector") as collector:
        await load_reference(collector, admin_headers())
        _, token_d1 = await _issue(collector, "D1")
        _, token_d2 = await _issue(collector, "D2")
        d1 = {"Authorization": f"Bearer {token_d1}"}
        d2 = {"Authorization": f"Bearer {token_d2}"}

        async def ready() -> bool:
            return (await collector.get("/readyz")).json()["kafka"] == "ok"

        await wait_for(ready, "collector ready")
        burst = {"events": [upload(org_code="D1") for _ in range(3)]}
        assert (await collector.post("/v1/uploads", json=burst, headers=d1)).status_code == 202
        batch = {"events": [upload(org_code="D1"), upload(org_code="D1")]}
        refused = await collector.post("/v1/uploads", json=batch, headers=d1)
        body = _assert_error(refused, 429, "rate_limited")
        assert "D1" in body["detail"] and int(refused.headers["Retry-After"]) >= 1
        assert (await collector.post("/v1/uploads", json=upload(org_code="D2"), headers=d2)).status_code == 202
