"""Collector HTTP routes: the two ingest endpoints, health, readiness and metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.collector.ingest import read_body
from services.collector.intake import Intake
from services.contract.models import EventType
from services.web.auth import CurrentPrincipal
from services.web.responses import JsonResponse
from services.web.schemas import ERROR_RESPONSES, request_body_schema

router = APIRouter()


async def _state(request: Request) -> Any:
    return request.app.state


State = Annotated[Any, Depends(_state)]


async def _ingest(request: Request, principal: CurrentPrincipal, event_type: EventType) -> JsonResponse:
    # Served by `ingest_asgi.IngestEndpoint` in front of these routes; kept equivalent (same Intake).
    intake: Intake = request.app.state.intake
    accepted = await intake.accept(event_type, principal, lambda: read_body(request))
    return JsonResponse({"accepted": accepted}, status_code=202)


@router.post(
    "/v1/uploads",
    status_code=202,
    summary="Post one upload event or a batch of up to 1,000",
    openapi_extra=request_body_schema("upload-batch.schema.json"),
    responses=ERROR_RESPONSES,
    tags=["ingest"],
)
async def post_uploads(request: Request, principal: CurrentPrincipal) -> JsonResponse:
    """`202 {"accepted": N}` once all N events are acknowledged by the broker."""
    return await _ingest(request, principal, EventType.UPLOAD)


@router.post(
    "/v1/kiosk-transactions",
    status_code=202,
    summary="Post one kiosk transaction or a batch of up to 1,000",
    openapi_extra=request_body_schema("kiosk-batch.schema.json"),
    responses=ERROR_RESPONSES,
    tags=["ingest"],
)
async def post_kiosk_transactions(request: Request, principal: CurrentPrincipal) -> JsonResponse:
    """`202 {"accepted": N}` once all N transactions are acknowledged by the broker."""
    return await _ingest(request, principal, EventType.KIOSK)


@router.get("/healthz", tags=["operations"], summary="The process is up")
async def healthz() -> dict[str, str]:
    """Liveness: answers while the event loop runs."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], summary="Kafka reachable, topics as configured, reference data loaded")
async def readyz(state: State) -> JsonResponse:
    """Readiness: a metadata round trip to the broker, and the topics' replication as configured."""
    kafka = await state.publisher.ready()
    reference = state.reference.value.version is not None
    body = {
        "kafka": "ok" if kafka else "unreachable",
        "topics": state.topics.describe(),
        "spooling": state.publisher.spooling,
        "reference_version": state.reference.value.version,
    }
    return JsonResponse(body, status_code=200 if kafka and state.topics.ok and reference else 503)


@router.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(state: State) -> Response:
    """Prometheus text exposition of this process's registry."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
