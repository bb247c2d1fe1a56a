"""Admin routes on the collector: reference data, institution tokens, months (admin token only).

Bodies are read as on the ingest endpoints (media type, a size bound, strict JSON) rather than
by FastAPI's body parsing, which reads a body of any size, keeps the last of duplicate keys and
answers an unreadable body in its own shape instead of the platform's one error shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from services.collector.ingest import read_body, read_json
from services.contract.models import Code
from services.storage.connection import Connection
from services.storage.errors import MonthNotFoundError, MonthStateError, ReferenceDataError, TokenNotFoundError
from services.storage.months import Month, archive_month, close_month, list_months
from services.storage.reference import parse_reference, replace_reference
from services.storage.tokens import issue_token, list_tokens, revoke_token
from services.web.auth import AdminPrincipal, Principal
from services.web.errors import ConflictError, InvalidRequestError, NotFoundError, error_responses
from services.web.responses import JsonResponse
from services.web.schemas import request_body_schema

router = APIRouter(prefix="/v1/admin", tags=["admin"])

# A city's reference set is a few hundred kilobytes of JSON (the demo's is 0.3 MB); a national
# one with every declaration could pass 1 MiB, so the bound is wider than ingest's. Larger sets
# load from CSV with `telemetry reference load`.
MAX_REFERENCE_BODY_BYTES = 16 * 1024 * 1024
MAX_TOKEN_BODY_BYTES = 16 * 1024
# A refused reference set lists this many problems at most (a 16 MiB body could make millions).
MAX_PROBLEMS_SHOWN = 100
MAX_PROBLEM_CHARS = 200

# Token ids are 12 hex digits; any id of the codes' alphabet is looked up (404 if unknown), and
# anything else (a NUL, which PostgreSQL refuses, above all) is a bad parameter.
_ID_PATTERN = r"^[A-Za-z0-9._:-]+$"
# Labels are shown in listings and logs; control characters (NUL above all, which PostgreSQL
# text cannot hold) are refused rather than stored.
Label = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]


class ReferenceLoad(BaseModel):
    """Answer of `PUT /v1/admin/reference`."""

    version: int
    created: bool
    institutions: int
    tables: int
    declarations: int
    kiosks: int
    platform_connections: int
    booking_platforms: int
    opening_balances: int
    no_upload_days: int


class TokenRequest(BaseModel):
    """Body of `POST /v1/admin/tokens`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    org_code: Code
    label: Label = ""


class IssuedToken(BaseModel):
    """Answer of `POST /v1/admin/tokens`; the only time the token is shown."""

    token_id: str
    org_code: str
    token: str


class TokenListing(BaseModel):
    """One token of `GET /v1/admin/tokens`, never its secret."""

    token_id: str
    org_code: str
    label: str
    created_at: str
    revoked_at: str | None


class RevokedToken(BaseModel):
    """Answer of `DELETE /v1/admin/tokens/{token_id}`."""

    token_id: str
    revoked: bool


def _shown(problems: Sequence[str]) -> list[str]:
    def cut(text: str) -> str:
        return text if len(text) <= MAX_PROBLEM_CHARS else text[:MAX_PROBLEM_CHARS] + "…"

    shown = [cut(p) for p in problems[:MAX_PROBLEMS_SHOWN]]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        shown.append(f"and {len(problems) - MAX_PROBLEMS_SHOWN} more problems")
    return shown


@router.put(
    "/reference",
    summary="Replace the whole reference set atomically (kept as a new version)",
    response_model=ReferenceLoad,
    responses={
        201: {"description": "A new version is in force", "model": ReferenceLoad},
        **error_responses(400, 401, 403, 413, 415, 422),
    },
    openapi_extra=request_body_schema("reference-set.schema.json"),
)
async def put_reference(request: Request, principal: AdminPrincipal) -> JsonResponse:
    """Load the whole reference set (v1 and revision 2 parts); 422 and nothing changed if inconsistent.

    200 when the same set is already in force, 201 when the load made a new version.
    """
    body = read_json(await read_body(request, MAX_REFERENCE_BODY_BYTES))
    try:
        ref = parse_reference(body)
    except ReferenceDataError as exc:
        raise InvalidRequestError("reference data refused; nothing changed", _shown(exc.problems)) from exc
    try:
        async with request.app.state.pool.acquire() as conn:
            result = await replace_reference(conn, ref, source=f"api:{principal.actor}")
            await conn.execute(
                "INSERT INTO admin_audit (actor, action, subject, details) VALUES ($1, 'reference.load', $2, $3)",
                principal.actor,
                str(result.version),
                orjson.dumps(result.as_dict()).decode(),
            )
    except ReferenceDataError as exc:
        raise InvalidRequestError("reference data refused; nothing changed", _shown(exc.problems)) from exc
    await request.app.state.reference.reload()
    return JsonResponse(result.as_dict(), status_code=201 if result.created else 200)


@router.post(
    "/tokens",
    status_code=201,
    summary="Issue a token bound to one institution",
    response_model=IssuedToken,
    responses=error_responses(400, 401, 403, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": TokenRequest.model_json_schema()}},
        }
    },
)
async def post_token(request: Request, principal: AdminPrincipal) -> dict[str, Any]:
    """The token is in this answer only; the platform keeps its SHA-256."""
    doc = read_json(await read_body(request, MAX_TOKEN_BODY_BYTES))
    try:
        body = TokenRequest.model_validate(doc)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in exc.errors(include_url=False)
        ]
        raise InvalidRequestError("cannot issue a token", _shown(problems)) from exc
    async with request.app.state.pool.acquire() as conn:
        try:
            issued = await issue_token(conn, body.org_code, body.label, principal.actor)
        except ReferenceDataError as exc:
            raise InvalidRequestError("cannot issue a token", exc.problems) from exc
    await request.app.state.authenticator.tokens.reload()
    return {"token_id": issued.token_id, "org_code": issued.org_code, "token": issued.token}


@router.delete(
    "/tokens/{token_id}",
    summary="Revoke a token; refused from the next request on",
    response_model=RevokedToken,
    responses=error_responses(401, 403, 404, 422),
)
async def delete_token(
    request: Request,
    token_id: Annotated[str, Path(min_length=1, max_length=64, pattern=_ID_PATTERN)],
    principal: AdminPrincipal,
) -> dict[str, Any]:
    """Revoke by id (the id is shown when issued and in the list)."""
    async with request.app.state.pool.acquire() as conn:
        try:
            await revoke_token(conn, token_id, principal.actor)
        except TokenNotFoundError as exc:
            raise NotFoundError(f"no token with id {token_id!r}") from exc
    await request.app.state.authenticator.tokens.reload()
    return {"token_id": token_id, "revoked": True}


@router.get(
    "/tokens",
    summary="List tokens (never their secrets)",
    response_model=list[TokenListing],
    responses=error_responses(401, 403),
)
async def get_tokens(request: Request, principal: AdminPrincipal) -> list[dict[str, Any]]:
    """Every token with its institution and state."""
    async with request.app.state.pool.acquire() as conn:
        tokens = await list_tokens(conn)
    return [
        {
            "token_id": t.token_id,
            "org_code": t.org_code,
            "label": t.label,
            "created_at": t.created_at.isoformat(),
            "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
        }
        for t in tokens
    ]


class MonthListing(BaseModel):
    """One month of `GET /v1/admin/months`."""

    month: str
    state: str
    opened_at: str
    cutoff: str | None
    closed_at: str | None
    archived_at: str | None


_MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
# The years timestamps may carry, as the reports take them (docs/contract-decisions.md).
FIRST_YEAR, LAST_YEAR = 1900, 9998


@router.get(
    "/months",
    summary="Every month events have counted in: open, closed or archived",
    response_model=list[MonthListing],
    responses=error_responses(401, 403),
)
async def get_months(request: Request, principal: AdminPrincipal) -> list[dict[str, Any]]:
    """Oldest first."""
    async with request.app.state.pool.acquire() as conn:
        return [m.as_dict() for m in await list_months(conn)]


def _month_path(month: str) -> date:
    year = int(month[:4])
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidRequestError(f"month must be in the years {FIRST_YEAR}-{LAST_YEAR}, got {month!r}")
    return date(year, int(month[5:7]), 1)


MonthPath = Annotated[str, Path(pattern=_MONTH_PATTERN, max_length=7)]


async def _change_month(
    request: Request,
    month: str,
    principal: Principal,
    action: str,
    change: Callable[[Connection, date], Awaitable[Month]],
) -> Month:
    """Close or archive: 404 for a month no event counted in, 409 for one in the wrong state; audited."""
    first = _month_path(month)
    async with request.app.state.pool.acquire() as conn:
        try:
            changed = await change(conn, first)
        except MonthNotFoundError as exc:
            raise NotFoundError(str(exc)) from exc
        except MonthStateError as exc:
            raise ConflictError(str(exc)) from exc
        await conn.execute(
            "INSERT INTO admin_audit (actor, action, subject, details) VALUES ($1, $2, $3, $4)",
            principal.actor,
            action,
            month,
            orjson.dumps(changed.as_dict()).decode(),
        )
    return changed


@router.post(
    "/months/{month}/close",
    summary="Close an open month: record the cutoff (now) and freeze every report of it",
    response_model=MonthListing,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def post_month_close(request: Request, month: MonthPath, principal: AdminPrincipal) -> dict[str, Any]:
    """404 if no event has counted in the month, 409 unless it is open. Afterwards the reports
    answer `as_of=closed` with the figures frozen now (for the admin and for each institution of
    the reference data in force), events of the month are still counted in the live figures, and
    each changed cell is listed by `GET /v1/reports/restatements`. Run `telemetry wait-applied`
    first: events received but not yet applied are not in the frozen figures."""
    return (await _change_month(request, month, principal, "month.close", close_month)).as_dict()


@router.post(
    "/months/{month}/archive",
    summary="Archive a closed month now: its dedupe keys are dropped and its events refused from then on",
    response_model=MonthListing,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def post_month_archive(request: Request, month: MonthPath, principal: AdminPrincipal) -> dict[str, Any]:
    """409 unless the month is closed. Afterwards events of the month are answered 422 (month
    archived), and a resend of its events stamped with another month counts there."""
    archived = await _change_month(request, month, principal, "month.archive", archive_month)
    await request.app.state.archived_months.reload()
    return archived.as_dict()
