"""The lean ingest handler on its own: concurrency limit, metrics, answers, and the app's dispatch.

Also: a client leaving mid-body is a 499 on both paths, never a 5xx."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry

from services.collector.app import create_app
from services.collector.ingest_asgi import IngestEndpoint
from services.collector.settings import CollectorSettings
from services.storage.live import LiveValue
from services.streams import STREAMS, Stream
from services.web.auth import ADMIN, Authenticator, Principal
from services.web.errors import TooManyRequestsError, install_error_handlers
from services.web.instrumentation import HttpMetrics, InstrumentationMiddleware

ADMIN_TOKEN = "a-unit-test-admin-token-0123456789"


class FakeIntake:
    """Reads the body like Intake and answers what the test says; can hold requests open."""

    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None
        self.held = 0
        self.all_held = asyncio.Event()
        self.expect_held = 0
        self.error: Exception | None = None
        self.seen: list[tuple[Stream[Any], Principal, bytes]] = []

    async def accept(self, stream: Stream[Any], principal: Principal, read: Callable[[], Awaitable[bytes]]) -> int:
        body = await read()
        self.seen.append((stream, principal, body))
        if self.gate is not None:
            self.held += 1
            if self.held == self.expect_held:
                self.all_held.set()
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return len(orjson.loads(body)["events"])


def _endpoint(limit: int = 2) -> tuple[IngestEndpoint, FakeIntake, CollectorRegistry]:
    registry = CollectorRegistry()
    endpoint = IngestEndpoint(HttpMetrics("collector", registry), max_concurrent=limit, retry_after_s=7)
    intake = FakeIntake()
    tokens: LiveValue[dict[bytes, str]] = LiveValue("tokens", None, None, "", {}, 5.0)  # type: ignore[arg-type]
    endpoint.bind(Authenticator(ADMIN_TOKEN, tokens), intake)  # type: ignore[arg-type]
    return endpoint, intake, registry


async def _post(
    endpoint: IngestEndpoint,
    body: bytes,
    headers: dict[str, str] | None = None,
    path: str = "/v1/uploads",
    chunks: list[dict[str, Any]] | None = None,
) -> tuple[int, dict[str, str], Any]:
    sent_headers = headers if headers is not None else {"authorization": f"Bearer {ADMIN_TOKEN}"}
    sent_headers = {"content-type": "application/json", **sent_headers}
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in sent_headers.items()],
    }
    messages = list(chunks) if chunks is not None else [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # as a server: nothing more until the client goes
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await endpoint(scope, receive, send, STREAMS["upload"])
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    answer_headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    assert answer_headers["content-type"] == "application/json"
    assert int(answer_headers["content-length"]) == len(sent[1]["body"])
    return sent[0]["status"], answer_headers, orjson.loads(sent[1]["body"])


def _requests(registry: CollectorRegistry, status: str) -> float:
    value = registry.get_sample_value(
        "collector_http_requests_total", {"route": "/v1/uploads", "method": "POST", "status": status}
    )
    return value or 0.0


async def test_accepted_request_is_202_with_the_count_and_counted() -> None:
    endpoint, intake, registry = _endpoint()
    status, _, body = await _post(endpoint, orjson.dumps({"events": [{}, {}]}))
    assert (status, body) == (202, {"accepted": 2})
    assert intake.seen[0][:2] == (STREAMS["upload"], ADMIN)
    assert _requests(registry, "202") == 1
    assert registry.get_sample_value("collector_http_request_duration_seconds_count", {"route": "/v1/uploads"}) == 1


async def test_chunked_body_is_joined() -> None:
    endpoint, intake, _ = _endpoint()
    chunks = [
        {"type": "http.request", "body": b'{"events": [', "more_body": True},
        {"type": "http.request", "body": b"{}]}", "more_body": False},
    ]
    status, _, _ = await _post(endpoint, b"", chunks=chunks)
    assert status == 202
    assert intake.seen[0][2] == b'{"events": [{}]}'


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthenticated"),
        ({"authorization": "Basic abc"}, 401, "unauthenticated"),
        ({"authorization": "Bearer not-the-token"}, 401, "unauthenticated"),
        ({"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "text/plain"}, 415, "unsupported_media_type"),
        ({"authorization": f"Bearer {ADMIN_TOKEN}", "content-length": "99999999"}, 413, "payload_too_large"),
    ],
)
async def test_refusals_before_the_body_use_the_one_error_shape(
    headers: dict[str, str], status: int, code: str
) -> None:
    endpoint, intake, registry = _endpoint()
    got, answer_headers, body = await _post(endpoint, b"{}", headers=headers)
    assert (got, body["error"]) == (status, code)
    assert body["detail"]
    if status == 401:
        assert answer_headers["www-authenticate"] == "Bearer"
    assert intake.seen == []
    assert _requests(registry, str(status)) == 1


async def test_api_error_of_the_intake_is_answered_with_its_headers() -> None:
    endpoint, intake, _ = _endpoint()
    intake.error = TooManyRequestsError("D1 is over its rate", retry_after_s=3)
    status, headers, body = await _post(endpoint, b'{"events": []}')
    assert (status, body["error"], headers["retry-after"]) == (429, "rate_limited", "3")


async def test_unexpected_error_is_500_in_the_one_shape() -> None:
    endpoint, intake, registry = _endpoint()
    intake.error = KeyError("boom")
    status, _, body = await _post(endpoint, b'{"events": []}')
    assert (status, body) == (500, {"error": "internal_error", "detail": "internal error"})
    assert _requests(registry, "500") == 1
    assert endpoint.in_flight == 0


async def test_over_the_concurrency_limit_is_503_at_once_and_frees_on_completion() -> None:
    endpoint, intake, registry = _endpoint(limit=2)
    intake.gate = asyncio.Event()
    intake.expect_held = 2
    held = [asyncio.create_task(_post(endpoint, b'{"events": [{}]}')) for _ in range(2)]
    await asyncio.wait_for(intake.all_held.wait(), 5)
    assert endpoint.in_flight == 2
    status, headers, body = await _post(endpoint, b'{"events": [{}]}')
    assert (status, body["error"], headers["retry-after"]) == (503, "unavailable", "7")
    assert "limit of 2" in body["detail"]
    assert _requests(registry, "503") == 1
    intake.gate.set()
    assert [(await task)[0] for task in held] == [202, 202]
    assert endpoint.in_flight == 0
    intake.gate = None
    assert (await _post(endpoint, b'{"events": [{}]}'))[0] == 202


async def test_the_app_sends_ingest_posts_to_the_endpoint_and_the_rest_to_fastapi() -> None:
    settings = CollectorSettings(admin_token=ADMIN_TOKEN)
    app = create_app(settings, CollectorRegistry())
    calls: list[tuple[str, Stream[Any]]] = []

    async def fake_endpoint(scope: Any, receive: Any, send: Any, stream: Stream[Any]) -> None:
        calls.append((scope["path"], stream))

    app.ingest = fake_endpoint  # type: ignore[assignment]

    async def call(method: str, path: str) -> None:
        scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            pass

        await app(scope, receive, send)

    await call("POST", "/v1/uploads")
    await call("POST", "/v1/kiosk-transactions")
    await call("GET", "/v1/uploads")  # 405 from FastAPI
    await call("POST", "/v1/uploads/")  # FastAPI's redirect
    assert calls == [("/v1/uploads", STREAMS["upload"]), ("/v1/kiosk-transactions", STREAMS["kiosk"])]


async def test_openapi_still_documents_both_ingest_routes() -> None:
    app = create_app(CollectorSettings(admin_token=ADMIN_TOKEN), CollectorRegistry())
    paths = app.openapi()["paths"]
    for path in ("/v1/uploads", "/v1/kiosk-transactions"):
        post = paths[path]["post"]
        assert "requestBody" in post
        assert {"202", "401", "413", "429", "503"} <= set(post["responses"])


async def test_body_over_the_limit_is_413_whether_in_one_message_or_in_chunks() -> None:
    endpoint, intake, _ = _endpoint()
    big = b" " * (1024 * 1024 + 1)
    assert (await _post(endpoint, big))[0] == 413
    chunks = [
        {"type": "http.request", "body": big[:600_000], "more_body": True},
        {"type": "http.request", "body": big[600_000:], "more_body": False},
    ]
    assert (await _post(endpoint, b"", chunks=chunks))[0] == 413
    assert intake.seen == []


async def test_client_gone_while_sending_the_body_is_499_not_a_server_error() -> None:
    endpoint, intake, registry = _endpoint()
    messages = [{"type": "http.request", "body": b'{"ev', "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/uploads",
        "headers": [(b"authorization", f"Bearer {ADMIN_TOKEN}".encode()), (b"content-type", b"application/json")],
    }
    await endpoint(scope, receive, send, STREAMS["upload"])
    # Nobody to answer: nothing is sent, nothing accepted, and it is counted as 499, not 5xx.
    assert sent == []
    assert intake.seen == [] and endpoint.in_flight == 0
    assert (_requests(registry, "499"), _requests(registry, "500")) == (1, 0)


async def test_client_gone_on_a_fastapi_route_is_499_too() -> None:
    registry = CollectorRegistry()
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(InstrumentationMiddleware, metrics=HttpMetrics("collector", registry))

    @app.put("/v1/admin/reference")
    async def reads_the_body(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    messages = [{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": "/v1/admin/reference",
        "raw_path": b"/v1/admin/reference",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 499
    labels = {"route": "/v1/admin/reference", "method": "PUT"}
    assert registry.get_sample_value("collector_http_requests_total", {**labels, "status": "499"}) == 1
    assert registry.get_sample_value("collector_http_requests_total", {**labels, "status": "500"}) is None
