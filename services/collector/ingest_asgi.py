"""The ingest POST endpoints (one per stream) as one plain ASGI handler, in front of FastAPI's stack.

A single-event request spent 60–70 % of its CPU in uvicorn/Starlette/FastAPI (py-spy): a
dozen middleware and router layers, dependency solving, send wrappers. This handler does
only what those endpoints need: request metrics, the concurrency limit, authentication,
the body, `Intake.accept` and one pre-encoded answer. The FastAPI routes of the same paths
stay declared for the OpenAPI document (and run the same `Intake`); requests never reach
them while `CollectorApp` dispatches here. Every error keeps the one JSON error shape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from prometheus_client import Counter, Histogram
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from services.collector.ingest import check_body_size, check_declared_body, collect_body
from services.collector.intake import Intake
from services.contract.models import MAX_BATCH_EVENTS, MAX_BODY_BYTES
from services.streams import STREAMS, Stream
from services.web.auth import Authenticator
from services.web.errors import CLIENT_CLOSED_REQUEST, ApiError, UnavailableError, error_response, log_client_gone
from services.web.instrumentation import HttpMetrics

log = logging.getLogger(__name__)

# Route template → stream; a template is also the `route` label of the request metrics.
INGEST_PATHS = STREAMS.by_path

_INTERNAL_ERROR = orjson.dumps({"error": "internal_error", "detail": "internal error"})


def _json_start(status: int, body: bytes) -> dict[str, object]:
    # The headers Starlette's JSONResponse sends, in its order.
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-length", str(len(body)).encode("ascii")), (b"content-type", b"application/json")],
    }


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The body as the server delivers it (Starlette's `Request.stream`, without a Request)."""
    message = await receive()
    # A small body comes in one message: no chunk list, no generator.
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")
        check_body_size(len(body), limit)
        return body
    return await collect_body(_chunks(receive, message), limit)


async def _chunks(receive: Receive, message: Message) -> AsyncIterator[bytes]:
    while True:
        if message["type"] == "http.request":
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect
        message = await receive()


class IngestEndpoint:
    """Answers every stream's `POST /v1/<endpoint>` (bind it before serving)."""

    def __init__(self, http_metrics: HttpMetrics, max_concurrent: int, retry_after_s: int) -> None:
        self._http = http_metrics
        self._limit = max_concurrent
        self._retry_after_s = retry_after_s
        self.in_flight = 0
        self._authenticator: Authenticator | None = None
        self._intake: Intake | None = None
        # Metric children bound once per label set: `labels()` is a locked dict look-up per call.
        self._request_counters: dict[tuple[str, int], Counter] = {}
        self._durations = {route: http_metrics.duration.labels(route) for route in INGEST_PATHS}
        # `{"accepted": N}` for every N a request can have, encoded once, on first use.
        self._accepted: dict[int, tuple[dict[str, object], dict[str, object]]] = {}

    def bind(self, authenticator: Authenticator, intake: Intake) -> None:
        """Give the clients made in the app's lifespan."""
        self._authenticator = authenticator
        self._intake = intake

    async def __call__(self, scope: Scope, receive: Receive, send: Send, stream: Stream[Any]) -> None:
        """Answer one request, and count and time it as the instrumentation middleware does."""
        started = time.perf_counter()
        status = 500
        try:
            status = await self._answer(scope, receive, send, stream)
        finally:
            route = scope["path"]
            counter = self._request_counters.get((route, status))
            if counter is None:
                counter = self._request_counters[route, status] = self._http.requests.labels(route, "POST", str(status))
            counter.inc()
            duration: Histogram = self._durations[route]
            duration.observe(time.perf_counter() - started)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, stream: Stream[Any]) -> int:
        if self.in_flight >= self._limit:
            busy = UnavailableError(
                f"the collector is at its limit of {self._limit} requests in progress", self._retry_after_s
            )
            await error_response(busy)(scope, receive, send)
            return busy.status
        self.in_flight += 1
        try:
            try:
                accepted = await self._accept(scope, receive, stream)
            except ApiError as exc:
                await error_response(exc)(scope, receive, send)
                return exc.status
            except ClientDisconnect:
                # Nobody to answer; the body never arrived whole, so nothing was published.
                log_client_gone(scope["path"], scope["method"])
                return CLIENT_CLOSED_REQUEST
            except Exception:
                # As the FastAPI app's last-resort handler: the one shape, the traceback to the log.
                log.exception("unhandled error", extra={"path": scope["path"], "method": scope["method"]})
                await send(_json_start(500, _INTERNAL_ERROR))
                await send({"type": "http.response.body", "body": _INTERNAL_ERROR})
                return 500
            start, body = self._accepted_answer(accepted)
            await send(start)
            await send(body)
            return 202
        finally:
            self.in_flight -= 1

    async def _accept(self, scope: Scope, receive: Receive, stream: Stream[Any]) -> int:
        if self._authenticator is None or self._intake is None:
            raise RuntimeError("IngestEndpoint used before bind()")
        authorization = content_type = content_length = None
        # The first of repeated headers, as Starlette's `Headers.get`.
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = authorization if authorization is not None else value.decode("latin-1")
            elif name == b"content-type":
                content_type = content_type if content_type is not None else value.decode("latin-1")
            elif name == b"content-length":
                content_length = content_length if content_length is not None else value.decode("latin-1")
        principal = self._authenticator.authenticate(authorization)

        async def read_body() -> bytes:
            check_declared_body(content_type, content_length, MAX_BODY_BYTES)
            return await _read_body(receive, MAX_BODY_BYTES)

        return await self._intake.accept(stream, principal, read_body)

    def _accepted_answer(self, accepted: int) -> tuple[dict[str, object], dict[str, object]]:
        answer = self._accepted.get(accepted)
        if answer is None:
            body = orjson.dumps({"accepted": accepted})
            answer = (_json_start(202, body), {"type": "http.response.body", "body": body})
            if accepted <= MAX_BATCH_EVENTS:  # bounded cache: a batch holds at most this many
                self._accepted[accepted] = answer
        return answer
