"""Collector HTTP routes: every stream's ingest endpoint, health, readiness and metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.collector.ingest import read_body
from services.collector.intake import Intake
from services.streams import Stream
from services.web.auth import CurrentPrincipal, Principal
from services.web.responses import JsonResponse
from services.web.schemas import ERROR_RESPONSES, request_body_schema

router = APIRouter()


async def _state(request: Request) -> Any:
    return request.app.state


State = Annotated[Any, Depends(_state)]


def ingest_router(streams: Iterable[Stream[Any]]) -> APIRouter:
    """`POST /v1/<endpoint>` of every stream, documented with its request schema from `schemas/`.

    Requests are answered by `ingest_asgi.IngestEndpoint` in front of these routes; the
    routes are kept equivalent (the same Intake), and declared for the OpenAPI document.
    """
    ingest = APIRouter()
    for stream in streams:
        ingest.add_api_route(
            stream.path,
            _ingest(stream),
            methods=["POST"],
            status_code=202,
            summary=stream.summary,
            description=stream.description,
            openapi_extra=request_body_schema(stream.batch_schema),
            responses=ERROR_RESPONSES,
            tags=["ingest"],
            # The operation id FastAPI derives from it: post_uploads_v1_uploads_post, ...
            name="post_" + stream.endpoint.replace("-", "_"),
        )
    return ingest


def _ingest(stream: Stream[Any]) -> Callable[[Request, Principal], Awaitable[JsonResponse]]:
    async def post(request: Request, principal: CurrentPrincipal) -> JsonResponse:
        intake: Intake = request.app.state.intake
        accepted = await intake.accept(stream, principal, lambda: read_body(request))
        return JsonResponse({"accepted": accepted}, status_code=202)

    return post


@router.get("/healthz", tags=["operations"], summary="The process is up")
async def healthz() -> dict[str, str]:
    """Liveness: answers while the event loop runs."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], summary="The collector can acknowledge events now")
async def readyz(state: State) -> JsonResponse:
    """Readiness: reference data loaded, the topics as durable as configured, and events can be
    made durable (Kafka, or room in the spool).

    A broker outage alone does not make the collector unready: acknowledging from the spool
    while Kafka is away is its job, and a load balancer that took every collector out during
    an outage would leave the spool unused. Topics less durable than the settings do: that is
    a configuration to fix before the collector takes traffic (it spools meanwhile, and writes
    nothing to them). The body says what each part is doing.
    """
    publisher = state.publisher
    kafka = await publisher.kafka.ready()
    room = publisher.spool_has_room
    reference = state.reference.value.version is not None
    body = {
        "kafka": "ok" if kafka else "unreachable",
        "topics": state.topics.describe(),
        "spooling": publisher.spooling,
        "spool_has_room": room,
        "spool_forwarder": "running" if publisher.forwarder_running else "restarting",
        "reference_version": state.reference.value.version,
    }
    ready = reference and state.topics.ok and (kafka or room)
    return JsonResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(state: State) -> Response:
    """Prometheus text exposition of this process's registry."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
