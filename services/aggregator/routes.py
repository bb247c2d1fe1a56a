"""Aggregator HTTP routes: the reports, the missing-upload alert, health and metrics."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from services.aggregator.asof import read_report, rollups_as_of
from services.bulletin import service as bulletin
from services.bulletin.errors import BulletinError
from services.contract.models import InstitutionKind
from services.contract.validation import echo
from services.quality.report import QualityReport, quality_report
from services.quality.scorecard import Scorecard, scorecard
from services.quality.settings import Thresholds
from services.quality.settings import settings_of as quality_settings_of
from services.reports.catalog import REPORTS, Body, Report, uploads_report_of
from services.reports.common import to_csv
from services.reports.cutoff import Cutoff, CutoffKind, parse_as_of
from services.reports.restatements import Restatement, restatements
from services.storage.connection import Connection
from services.storage.errors import MonthNotFoundError, MonthStateError, SnapshotNotFoundError
from services.storage.months import Month as MonthRow
from services.storage.months import month_of
from services.streams.appointments.model import AppointmentReport
from services.streams.hotline.model import HotlineReport, HotlineRow
from services.streams.hotline.report import csv_rows
from services.streams.kiosk.model import KioskReportRow
from services.streams.remote_uploads.model import RemotePlatformsReport
from services.streams.uploads.model import MissingUploadRow, UploadReportRow
from services.streams.uploads.report import missing_uploads
from services.web.auth import CurrentPrincipal, Principal
from services.web.errors import ConflictError, InvalidRequestError, NotFoundError, UnavailableError, error_responses
from services.web.responses import JsonResponse

router = APIRouter()

_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
Month = Annotated[
    str, Query(description="YYYY-MM", examples=["2020-04"], pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", max_length=7)
]
Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]
AsOf = Annotated[
    str | None,
    Query(
        description="`closed`: the figures frozen when the month was closed (409 while it is open); "
        "an RFC 3339 time: the figures of the events received by then; without it, the live figures",
        examples=["closed", "2020-05-01T00:00:00+08:00"],
        max_length=64,
    ),
]
# The years timestamps may carry (docs/contract-decisions.md): a month or day outside them has no
# events, and at the ends of the calendar the next month or the previous week do not exist.
FIRST_YEAR, LAST_YEAR = 1900, 9998
_REPORT_ERRORS = error_responses(401, 404, 409, 422, 503)
AS_OF_RETRY_S = 30
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


def _parse_as_of(text: str | None) -> str | datetime | None:
    if text is None:
        return None
    try:
        return parse_as_of(text)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from exc


@contextmanager
def _month_errors() -> Iterator[None]:
    """The storage's month errors as the API's: unknown month 404, open month 409, no snapshot 404."""
    try:
        yield
    except (MonthNotFoundError, SnapshotNotFoundError) as exc:
        raise NotFoundError(str(exc)) from exc
    except MonthStateError as exc:
        raise ConflictError(str(exc)) from exc


async def _closed_month(conn: Connection, month: date) -> MonthRow:
    with _month_errors():
        found = await month_of(conn, month)
        if found is None:
            raise MonthNotFoundError(f"no event has counted in {month:%Y-%m}, and it was never closed")
        if found.cutoff is None:
            raise MonthStateError(f"{month:%Y-%m} is open: it has no cutoff yet")
    return found


@asynccontextmanager
async def _as_of_slot(request: Request) -> AsyncIterator[None]:
    """One figures-as-of computation at a time per aggregator: each folds every raw event received
    by then (minutes for a month of a city), so a second one is answered 503 rather than queued."""
    gate: asyncio.Lock = request.app.state.as_of_gate
    if gate.locked():
        raise UnavailableError("figures as of a time are being computed for another request", AS_OF_RETRY_S)
    async with gate:
        yield


async def _report_body(request: Request, principal: Principal, report: Report, month: str, as_of: str | None) -> Body:
    """A report's JSON body: live, frozen at the month's close, or as of a time; the reader's own view."""
    first = parse_month(month)
    when = _parse_as_of(as_of)
    zone = request.app.state.settings.zone
    async with request.app.state.pool.acquire() as conn:
        with _month_errors():
            if isinstance(when, datetime):
                async with _as_of_slot(request):
                    return await read_report(conn, report, first, principal.org_code, when, zone)
            return await read_report(conn, report, first, principal.org_code, when, zone)


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
    as_of: AsOf = None,
) -> Response:
    """One row per institution of `kind`; an institution token sees only its own row."""
    body = await _report_body(request, principal, uploads_report_of(kind), month, as_of)
    rows = [UploadReportRow.model_validate(row) for row in body]
    return _answer(UploadReportRow, rows, format, f"uploads-{kind.value}-{month}")


@router.get(
    "/v1/reports/kiosks",
    tags=["reports"],
    response_model=list[KioskReportRow],
    responses={200: {"content": _CSV}, **_REPORT_ERRORS},
    summary="Monthly kiosk use per institution, hospitals then districts, and a total row",
)
async def get_kiosks_report(
    request: Request, principal: CurrentPrincipal, month: Month, format: Format = "json", as_of: AsOf = None
) -> Response:
    """Exact decimal amounts (strings in JSON)."""
    body = await _report_body(request, principal, REPORTS["kiosks"], month, as_of)
    rows = [KioskReportRow.model_validate(row) for row in body]
    return _answer(KioskReportRow, rows, format, f"kiosks-{month}")


@router.get(
    "/v1/reports/hotline",
    tags=["reports"],
    response_model=HotlineReport,
    responses={200: {"content": _CSV}, **_REPORT_ERRORS},
    summary="Monthly 12320 hotline figures per centre, most calls first, and their total",
)
async def get_hotline_report(
    request: Request, principal: CurrentPrincipal, month: Month, format: Format = "json", as_of: AsOf = None
) -> Response:
    """Calls by category and 12345 work orders per centre (`rows`) and `total`; CSV: the rows, then the total."""
    body = await _report_body(request, principal, REPORTS["hotline"], month, as_of)
    if format == "csv":
        report = HotlineReport.model_validate(body)
        return _answer(HotlineRow, csv_rows(report), format, f"hotline-{month}")
    return JsonResponse(body)


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
    as_of: AsOf = None,
) -> Response:
    """Connections at the month's end (reference data), the month's sums; an institution sees its own figures."""
    return JsonResponse(await _report_body(request, principal, REPORTS["remote-platforms"], month, as_of))


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
    as_of: AsOf = None,
) -> Response:
    """Two tables (institutions, booking platforms), so JSON only: `format=csv` is refused (422)
    rather than answered in JSON. An institution token sees its own row and totals of it, and
    `appointments_cumulative` null (it is a figure of every institution)."""
    return JsonResponse(await _report_body(request, principal, REPORTS["appointments"], month, as_of))


@router.get(
    "/v1/reports/bulletin",
    tags=["reports"],
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}, "application/pdf": {}}}, **error_responses(401, 404, 409, 422, 503)},
    summary="The monthly data-quality bulletin: the report tables, charts and each institution's problem list",
)
async def get_bulletin(
    request: Request,
    principal: CurrentPrincipal,
    month: Month,
    format: Annotated[Literal["html", "pdf"], Query(description="html (default) or pdf")] = "html",
    as_of: AsOf = None,
) -> Response:
    """A self-contained HTML page (or its PDF); an institution token sees only its own rows and problems.

    The page says which figures it shows. `as_of=closed` shows a closed month as of its cutoff:
    computed, as for a time, from the events received by then (the bulletin reads more than the
    frozen reports hold: docs/contract-decisions.md)."""
    first = parse_month(month)
    when = _parse_as_of(as_of)
    options = bulletin.settings_of(request.app.state)
    zone = request.app.state.settings.zone
    async with request.app.state.pool.acquire() as conn, AsyncExitStack() as as_of_context:
        cutoff = None
        if isinstance(when, datetime):
            cutoff = Cutoff(CutoffKind.AS_OF, when)
        elif when is not None:
            closed = await _closed_month(conn, first)
            assert closed.cutoff is not None
            cutoff = Cutoff(CutoffKind.CLOSED, closed.cutoff)
        if cutoff is not None:
            await as_of_context.enter_async_context(_as_of_slot(request))
            await as_of_context.enter_async_context(rollups_as_of(conn, cutoff.at, zone))
        page = await bulletin.bulletin_html(
            conn,
            first,
            org_code=principal.org_code,
            settings=options,
            zone=zone,
            cutoff=cutoff,
            thresholds=check_thresholds(request),
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


def check_thresholds(request: Request) -> Thresholds:
    """The checks' thresholds: the quality settings and the bulletin's conformance threshold."""
    state = request.app.state
    return Thresholds.of(quality_settings_of(state), bulletin.settings_of(state).conformance_threshold)


@router.get(
    "/v1/reports/quality",
    tags=["reports"],
    response_model=QualityReport,
    responses=_REPORT_ERRORS,
    summary="The month's data-quality checks: each finding with its code, severity, sentence and figures",
)
async def get_quality_report(
    request: Request,
    principal: CurrentPrincipal,
    month: Month,
    format: Annotated[Literal["json"], Query(description="json only: rows, comparisons and the catalogue")] = "json",
) -> Response:
    """One row per institution and finding (the bulletin's problem lists as data); an institution
    token sees its own findings, and no check that compares it with other institutions."""
    first = parse_month(month)
    async with request.app.state.pool.acquire() as conn:
        report = await quality_report(
            conn,
            first,
            principal.org_code,
            zone=request.app.state.settings.zone,
            thresholds=check_thresholds(request),
        )
    return JsonResponse(report.model_dump(mode="json"))


@router.get(
    "/v1/reports/scorecard",
    tags=["reports"],
    response_model=Scorecard,
    responses=_REPORT_ERRORS,
    summary="Districts and hospitals ranked by data quality, the worst first, with the previous month beside",
)
async def get_scorecard(
    request: Request,
    principal: CurrentPrincipal,
    month: Month,
    format: Annotated[Literal["json"], Query(description="json only")] = "json",
) -> Response:
    """Which institutions to govern next; an institution token sees its own row (ranked among all)."""
    first = parse_month(month)
    async with request.app.state.pool.acquire() as conn:
        card = await scorecard(
            conn, first, principal.org_code, zone=request.app.state.settings.zone, thresholds=check_thresholds(request)
        )
    return JsonResponse(card.model_dump(mode="json"))


class RestatementsBody(BaseModel):
    """`GET /v1/reports/restatements`: a closed month's cells that changed after its close."""

    month: str
    state: str
    cutoff: str | None
    events_after_cutoff: int
    restatements: list[Restatement]


@router.get(
    "/v1/reports/restatements",
    tags=["reports"],
    response_model=RestatementsBody,
    responses=_REPORT_ERRORS,
    summary="The cells of a closed month's reports that changed after the close, with the events received since",
)
async def get_restatements(request: Request, principal: CurrentPrincipal, month: Month) -> Response:
    """Every report's frozen cells against today's: report, org_code (null for a total), field,
    value at close, value now, and the events of the report's stream counting in the month that
    were received after the cutoff. 404 for a month without events, 409 for an open one; an
    institution token sees its own view's cells."""
    first = parse_month(month)
    async with request.app.state.pool.acquire() as conn:
        closed = await _closed_month(conn, first)
        with _month_errors():
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                found = await restatements(conn, closed, request.app.state.settings.zone, principal.org_code)
    return JsonResponse(found.as_dict())


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
