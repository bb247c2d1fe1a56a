"""The lean ingest handler answers exactly as the documented FastAPI routes of the same paths."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send

from services.collector.app import create_app as create_collector
from tests.fixtures.events import kiosk, load_reference, upload
from tests.fixtures.stack import WAIT_S, StackConfig, admin_headers, running, wait_for

pytestmark = pytest.mark.integration


def _answer(response: httpx.Response) -> tuple[int, dict[str, str | None], Any]:
    headers = {name: response.headers.get(name) for name in ("content-type", "retry-after", "www-authenticate")}
    return response.status_code, headers, response.json()


async def test_every_answer_of_the_lean_path_matches_the_fastapi_route(stack_config: StackConfig) -> None:
    app = create_collector(stack_config.collector_settings(), CollectorRegistry())

    async def via_fastapi(scope: Scope, receive: Receive, send: Send) -> None:
        # The app's own dispatch skipped: FastAPI's middleware stack, dependencies and route.
        await FastAPI.__call__(app, scope, receive, send)

    async with running(app, "http://collector") as lean:
        transport = httpx.ASGITransport(app=via_fastapi)
        async with httpx.AsyncClient(transport=transport, base_url="http://collector", timeout=WAIT_S) as routed:

            async def ready() -> bool:
                return (await lean.get("/readyz")).json()["kafka"] == "ok"

            await load_reference(lean, admin_headers())
            await wait_for(ready, "collector ready")
            issued = await lean.post("/v1/admin/tokens", json={"org_code": "D1"}, headers=admin_headers())
            d1 = {"Authorization": f"Bearer {issued.json()['token']}"}
            admin = admin_headers()
            json_type = {"Content-Type": "application/json"}
            cases: list[tuple[str, str, dict[str, str], bytes]] = [
                ("accepted single", "/v1/uploads", admin, orjson.dumps(upload())),
                ("accepted batch", "/v1/uploads", admin, orjson.dumps({"events": [upload(), upload()]})),
                ("accepted kiosk", "/v1/kiosk-transactions", admin, orjson.dumps(kiosk())),
                ("institution's own", "/v1/uploads", d1, orjson.dumps(upload(org_code="D1"))),
                ("no token", "/v1/uploads", {}, orjson.dumps(upload())),
                ("unknown token", "/v1/uploads", {"Authorization": "Bearer nope-nope"}, orjson.dumps(upload())),
                ("wrong scheme", "/v1/uploads", {"Authorization": "Basic eDp5"}, orjson.dumps(upload())),
                ("another institution", "/v1/uploads", d1, orjson.dumps(upload(org_code="D2"))),
                ("text body", "/v1/uploads", {**admin, "Content-Type": "text/plain"}, b"{}"),
                ("declared too large", "/v1/uploads", {**admin, "Content-Length": "2000000"}, b"{}"),
                ("too large", "/v1/uploads", admin, b" " * (1024 * 1024 + 1)),
                ("empty", "/v1/uploads", admin, b""),
                ("not JSON", "/v1/uploads", admin, b"{nope"),
                ("duplicate keys", "/v1/uploads", admin, b'{"events": [], "events": []}'),
                ("array", "/v1/uploads", admin, b"[]"),
                ("too many", "/v1/uploads", admin, orjson.dumps({"events": [upload() for _ in range(1001)]})),
                ("bad field", "/v1/uploads", admin, orjson.dumps(upload(record_count=-1))),
                ("unknown table", "/v1/uploads", admin, orjson.dumps(upload(table_code="NOPE"))),
                ("upload as kiosk", "/v1/kiosk-transactions", admin, orjson.dumps(upload())),
            ]
            statuses = set()
            for name, path, headers, body in cases:
                sent = {**json_type, **headers}
                got = [_answer(await client.post(path, content=body, headers=sent)) for client in (lean, routed)]
                assert got[0] == got[1], name
                statuses.add(got[0][0])
            assert statuses == {202, 400, 401, 403, 413, 415, 422}
