"""Admin routes on the collector: reference data and institution tokens (admin token only)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from services.storage.errors import ReferenceDataError, TokenNotFoundError
from services.storage.reference import parse_reference, replace_reference
from services.storage.tokens import issue_token, list_tokens, revoke_token
from services.web.auth import AdminPrincipal
from services.web.errors import InvalidRequestError, MalformedBodyError, NotFoundError
from services.web.responses import JsonResponse
from services.web.schemas import request_body_schema

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.put(
    "/reference",
    summary="Replace the whole reference set atomically (kept as a new version)",
    openapi_extra=request_body_schema("reference-set.schema.json"),
)
async def put_reference(request: Request, principal: AdminPrincipal) -> JsonResponse:
    """Load institutions, tables, declarations and kiosks; 422 and nothing changed if inconsistent."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise MalformedBodyError(f"body is not valid JSON: {exc}") from exc
    try:
        ref = parse_reference(body)
        async with request.app.state.pool.acquire() as conn:
            result = await replace_reference(conn, ref, source=f"api:{principal.actor}")
            await conn.execute(
                "INSERT INTO admin_audit (actor, action, subject, details) VALUES ($1, 'reference.load', $2, $3)",
                principal.actor,
                str(result.version),
                orjson.dumps(result.as_dict()).decode(),
            )
    except ReferenceDataError as exc:
        raise InvalidRequestError("reference data refused; nothing changed", exc.problems) from exc
    await request.app.state.reference.reload()
    return JsonResponse(result.as_dict(), status_code=201 if result.created else 200)


class TokenRequest(BaseModel):
    """Body of `POST /v1/admin/tokens`."""

    org_code: str = Field(min_length=1, max_length=64)
    label: str = Field("", max_length=200)


@router.post("/tokens", status_code=201, summary="Issue a token bound to one institution")
async def post_token(request: Request, body: TokenRequest, principal: AdminPrincipal) -> dict[str, Any]:
    """The token is in this answer only; the platform keeps its SHA-256."""
    async with request.app.state.pool.acquire() as conn:
        try:
            issued = await issue_token(conn, body.org_code, body.label, principal.actor)
        except ReferenceDataError as exc:
            raise InvalidRequestError("cannot issue a token", exc.problems) from exc
    await request.app.state.authenticator.tokens.reload()
    return {"token_id": issued.token_id, "org_code": issued.org_code, "token": issued.token}


@router.delete("/tokens/{token_id}", summary="Revoke a token; refused from the next request on")
async def delete_token(request: Request, token_id: str, principal: AdminPrincipal) -> dict[str, Any]:
    """Revoke by id (the id is shown when issued and in the list)."""
    async with request.app.state.pool.acquire() as conn:
        try:
            await revoke_token(conn, token_id, principal.actor)
        except TokenNotFoundError as exc:
            raise NotFoundError(f"no token with id {token_id!r}") from exc
    await request.app.state.authenticator.tokens.reload()
    return {"token_id": token_id, "revoked": True}


@router.get("/tokens", summary="List tokens (never their secrets)")
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
