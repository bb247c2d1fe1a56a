"""Aggregator HTTP routes: the reports, the missing-upload alert, health and metrics."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from services.aggregator import reports
from services.contract.models import InstitutionKind, KioskReportRow, MissingUploadRow, UploadReportRow
from services.web.auth import CurrentPrincipal
from services.web.errors import InvalidRequestError
from services.web.responses import JsonResponse

router = APIRouter()

_MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")
Month = Annotated[str, Query(description="YYYY-MM", examples=["2020-04"])]
Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]


def _parse_month(text: str) -> date:
    match = _MONTH.match(text)
    if not match:
        raise InvalidRequestError(f"month must be YYYY-MM, got {text!r}")
    return date(int(match[1]), int(match[2]), 1)


def _answer(model: type[BaseModel], rows: Sequence[BaseModel], fmt: str, name: str) -> Response:
    if fmt == "csv":
        return Response(
            reports.to_csv(model, rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return JsonResponse([row.model_dump(mode="json") for row in rows])


@router.get(
    "/v1/reports/uploads",
    tags=["reports"],
    response_model=list[UploadReportRow],
    summary="Monthly upload metrics per institution, most records first",
)
async def get_uploads_report(
    request: Request,
    principal: CurrentPrincipal,
    month: Month,
    kind: Annotated[InstitutionKind, Query()],
    format: Format = "json",
) -> Response:
    """One row per institution of `kind`; an institution token sees only its own row."""
    first = _parse_month(month)
    async with request.app.state.pool.acquire() as conn:
        rows = await reports.uploads_report(conn, first, kind, principal.org_code)
    return _answer(UploadReportRow, rows, format, f"uploads-{kind.value}-{month}")


@router.get(
    "/v1/reports/kiosks",
    tags=["reports"],
    response_model=list[KioskReportRow],
    summary="Monthly kiosk use per institution, hospitals then districts, and a total row",
)
async def get_kiosks_report(
    request: Request, principal: CurrentPrincipal, month: Month, format: Format = "json"
) -> Response:
    """Exact decimal amounts (strings in JSON)."""
    first = _parse_month(month)
    async with request.app.state.pool.acquire() as conn:
        rows = await reports.kiosks_report(conn, first, principal.org_code)
    return _answer(KioskReportRow, rows, format, f"kiosks-{month}")


@router.get(
    "/v1/alerts/missing-uploads",
    tags=["alerts"],
    response_model=list[MissingUploadRow],
    summary="Institutions that uploaded in the previous 7 days but not on `date`",
)
async def get_missing_uploads(
    request: Request,
    principal: CurrentPrincipal,
    date_: Annotated[date, Query(alias="date", description="YYYY-MM-DD in the platform time zone")],
) -> Response:
    """Expected = records on any of the 7 days before; missing = no records on the day."""
    async with request.app.state.pool.acquire() as conn:
        rows = await reports.missing_uploads(conn, date_, principal.org_code)
    return JsonResponse([row.model_dump(mode="json") for row in rows])


@router.get("/healthz", tags=["operations"], summary="The process is up")
async def healthz() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], summary="Database reachable and the consumer running")
async def readyz(request: Request) -> JsonResponse:
    """Readiness: a database round trip and a live consumer task."""
    state: Any = request.app.state
    try:
        async with state.pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1")
        db = True
    except (OSError, TimeoutError) as exc:
        db = False
        del exc
    consuming = state.consumer_task is not None and not state.consumer_task.done()
    body = {"database": "ok" if db else "unreachable", "consumer": "running" if consuming else "stopped"}
    return JsonResponse(body, status_code=200 if db and consuming else 503)


@router.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this process's registry."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
