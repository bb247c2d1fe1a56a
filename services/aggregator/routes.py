"""Aggregator HTTP routes: the reports, the missing-upload alert, health and metrics."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from services.bulletin import service as bulletin
from services.bulletin.errors import BulletinError
from services.contract.models import InstitutionKind
from services.contract.validation import echo
from services.reports.common import to_csv
from services.streams.appointments.model import AppointmentReport
from services.streams.appointments.report import appointments_report
from services.streams.hotline.model import HotlineReport, HotlineRow
from services.streams.hotline.report import csv_rows, hotline_report_of
from services.streams.kiosk.model import KioskReportRow
from services.streams.kiosk.report import kiosks_report
from services.streams.remote_uploads.model import RemotePlatformsReport
from services.streams.remote_uploads.report import remote_platforms_report
from services.streams.uploads.model import MissingUploadRow, UploadReportRow
from services.streams.uploads.report import missing_uploads, uploads_report
from services.web.auth import CurrentPrincipal
from services.web.errors import InvalidRequestError, UnavailableError, error_responses
from services.web.responses import JsonResponse

router = APIRouter()

_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
Month = Annotated[
    str, Query(description="YYYY-MM", examples=["2020-04"], pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", max_length=7)
]
Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]
# The years timestamps may carry (docs/contract-decisions.md): a month or day outside them has no
# events, and at the ends of the calendar the next month or the previous week do not exist.
FIRST_YEAR, LAST_YEAR = 1900, 9998
_REPORT_ERRORS = error_responses(401, 422)
_CSV = {"text/csv": {"schema": {"type": "string"}}}


def parse_month(text: str) -> date:
    """First day of a `YYYY-MM` month within FIRST_YEAR-LAST_YEAR, or InvalidRequestError."""
    # fullmatch: `$` would also match before a final newline, which then reached a header.
    match = _MONTH.fullmatch(text)
    if not match:
        raise InvalidRequestError(f"month must be YYYY-MM, got {echo(repr(text))}")
    if not FIRST_YEAR <= int(match[1]) <= LAST_YEAR:
        raise InvalidRequestError(f"month must be in the years {FIRST_YEAR}-{LAST_YEAR}, got {text!r}")
    return date(int(match[1]), int(match[2]), 1)


def _answer(model: type[BaseModel], rows: Sequence[BaseModel], fmt: str, name: str) -> Response:
    if fmt == "csv":
        return Response(
            to_csv(model, rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return JsonResponse([row.model_dump(mode="json") for row in rows])


@router.get(
    "/v1/reports/uploads",
    tags=["reports"],
    response_model=list[UploadReportRow],
    responses={200: {"content": _CSV}, **_REPORT_ERRORS},
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
    first = parse_month(month)
    async with request.app.state.pool.acquire() as conn:
        rows = await uploads_report(conn, first, kind, principal.org_code)
    return _answer(UploadReportRow, rows, format, f"uploads-{kind.value}-{month}")


@router.get(
    "/v1/reports/kiosks",
    tags=["reports"],
    response_model=list[KioskReportRow],
    responses={200: {"content": _CSV}, **_REPORT_ERRORS},
    summary="Monthly kiosk use per institution, hospitals then districts, and a total row",
)
async def get_kiosks_report(
    request: Request, principal: CurrentPrincipal, month: Month, format: Format = "json"
) -> Response:
    """Exact decimal amounts (strings in JSON)."""
    first = parse_month(month)
    async with request.app.state.pool.acquire() as conn:
        rows = await kiosks_report(conn, first, principal.org_code)
    return _answer(KioskReportRow, rows, format, f"kiosks-{month}")


@router.get(
    "/v1/reports/hotline",
    tags=["reports"],
    response_model=HotlineReport,
    responses={200: {"content": _CSV}, **_REPORT_ERRORS},
    summary="Monthly 12320 hotline figures per centre, most calls first, and their total",
)
async def get_hotline_report(
    request: Request, principal: CurrentPrincipal, month: Month, format: Format = "json"
) -> Response:
    """Calls by category and 12345 work orders per centre (`rows`) and `total`; CSV: the rows, then the total."""
    first = parse_month(month)
    async with request.app.state.pool.acquire() as conn:
        report = await hotline_report_of(conn, first, principal.org_code)
    if format == "csv":
        return _answer(HotlineRow, csv_rows(report), format, f"hotline-{month}")
    return JsonResponse(report.model_dump(mode="json"))


@router.get(
    "/v1/reports/remote-platforms",
    tags=["reports"],
    response_model=RemotePlatformsReport,
    responses=_REPORT_ERRORS,
    summary="Monthly figures of the four remote-medicine platforms: connections, volumes, top uploaders",
)
async def get_remote_platforms_report(
    request: Request,
    principal: CurrentPrincipal,
    month: Month,
    format: Annotated[Literal["json"], Query(description="json only: the report is not one table")] = "json",
) -> Response:
    """Connections at the month's end (reference data), the month's sums; an institution sees its own figures."""
    first = parse_month(month)
    async with request.app.state.pool.acquire() as conn:
        report = await remote_platforms_report(conn, first, principal.org_code)
    return JsonResponse(report.model_dump(mode="json"))


@router.get(
    "/v1/reports/appointments",
    tags=["reports"],
    response_model=AppointmentReport,
    responses=_REPORT_ERRORS,
    summary="Monthly bookings per institution and channel, per booking platform, and the total to date",
)
async def get_appointments_report(
    request: Request,
    principal: CurrentPrincipal,
    month: Month,
    format: Annotated[Literal["json"], Query(description="json only: the report is two tables")] = "json",
) -> Response:
    """Two tables (institutions, booking platforms), so JSON only: `format=csv` is refused (422)
    rather than answered in JSON. An institution token sees its own row and totals of it, and
    `appointments_cumulative` null (it is a figure of every institution)."""
    first = parse_month(month)
    async with request.app.state.pool.acquire() as conn:
        report = await appointments_report(conn, first, principal.org_code)
    return JsonResponse(report.model_dump(mode="json"))


@router.get(
    "/v1/reports/bulletin",
    tags=["reports"],
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}, "application/pdf": {}}}, **error_responses(401, 422, 503)},
    summary="The monthly data-quality bulletin: the report tables, charts and each institution's problem list",
)
async def get_bulletin(
    request: Request,
    principal: CurrentPrincipal,
    month: Month,
    format: Annotated[Literal["html", "pdf"], Query(description="html (default) or pdf")] = "html",
) -> Response:
    """A self-contained HTML page (or its PDF); an institution token sees only its own rows and problems."""
    first = parse_month(month)
    options = bulletin.settings_of(request.app.state)
    async with request.app.state.pool.acquire() as conn:
        page = await bulletin.bulletin_html(
            conn, first, org_code=principal.org_code, settings=options, zone=request.app.state.settings.zone
        )
    if format == "html":
        return HTMLResponse(page)
    try:
        document = await bulletin.bulletin_pdf(page, options)
    except BulletinError as exc:
        raise UnavailableError(f"the PDF cannot be printed now: {exc}", retry_after_s=60) from exc
    return Response(
        document,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="bulletin-{month}.pdf"'},
    )


@router.get(
    "/v1/alerts/missing-uploads",
    tags=["alerts"],
    response_model=list[MissingUploadRow],
    responses=_REPORT_ERRORS,
    summary="Institutions that uploaded in the previous 7 days but not on `date`",
)
async def get_missing_uploads(
    request: Request,
    principal: CurrentPrincipal,
    date_: Annotated[
        str,
        Query(
            alias="date",
            description="YYYY-MM-DD in the platform time zone",
            pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            max_length=10,
            json_schema_extra={"format": "date"},
        ),
    ],
) -> Response:
    """Expected = records on any of the 7 days before; missing = no records on the day."""
    # Read as text: a `date` parameter would also take a Unix time ("0" is 1970-01-01).
    try:
        day = date.fromisoformat(date_)
    except ValueError as exc:
        raise InvalidRequestError(f"date must be a calendar date YYYY-MM-DD, got {date_!r}") from exc
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise InvalidRequestError(f"date must be in the years {FIRST_YEAR}-{LAST_YEAR}, got {date_}")
    async with request.app.state.pool.acquire() as conn:
        rows = await missing_uploads(conn, day, principal.org_code)
    return JsonResponse([row.model_dump(mode="json") for row in rows])


@router.get("/healthz", tags=["operations"], summary="The process is up")
async def healthz() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["operations"],
    summary="Database reachable, the consumer running, the topics as durable as configured",
    responses={503: {"description": "Not ready: the same body, saying which part is not"}},
)
async def readyz(request: Request) -> JsonResponse:
    """Readiness: a database round trip, a live consumer task, and the topics' replication as configured."""
    state: Any = request.app.state
    try:
        async with state.pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1")
        db = True
    except (OSError, TimeoutError) as exc:
        db = False
        del exc
    consuming = state.consumer_task is not None and not state.consumer_task.done()
    body = {
        "database": "ok" if db else "unreachable",
        "consumer": "running" if consuming else "stopped",
        "topics": state.topics.describe(),
    }
    return JsonResponse(body, status_code=200 if db and consuming and state.topics.ok else 503)
