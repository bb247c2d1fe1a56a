"""`GET /v1/events/{endpoint}/{org_code}/{event_id}`: was this event counted, dead-lettered, or neither?"""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Path, Request
from pydantic import BaseModel

from services.storage.receipts import Receipt, find_receipt
from services.streams import STREAMS
from services.web.auth import CurrentPrincipal, Principal
from services.web.errors import ForbiddenError, NotFoundError, error_responses

router = APIRouter(tags=["receipts"])

_CODE = r"^[A-Za-z0-9._:-]+$"


class ReceiptBody(BaseModel):
    """A receipt: `counted` (month, received_at, applied_at) or `dead_lettered` (reason, detail)."""

    status: str
    endpoint: str
    org_code: str
    event_id: str
    month: str | None = None
    received_at: str | None = None
    applied_at: str | None = None
    reason: str | None = None
    detail: str | None = None
    dead_lettered_at: str | None = None


@router.get(
    "/v1/events/{endpoint}/{org_code}/{event_id}",
    summary="What became of one event: counted (and in which month), dead-lettered (and why), or 404",
    response_model=ReceiptBody,
    response_model_exclude_none=True,
    responses=error_responses(401, 403, 404, 422),
)
async def get_receipt(
    request: Request,
    principal: CurrentPrincipal,
    endpoint: Annotated[str, Path(max_length=64)],
    org_code: Annotated[str, Path(min_length=1, max_length=64, pattern=_CODE)],
    event_id: Annotated[str, Path(min_length=1, max_length=128, pattern=_CODE)],
) -> dict[str, Any]:
    """404 when the event was not applied yet, never received, or its month is archived."""
    receipt = await receipt_for(request.app.state.pool, principal, endpoint, org_code, event_id)
    return receipt.as_dict(endpoint)


async def receipt_for(pool: asyncpg.Pool, principal: Principal, endpoint: str, org_code: str, event_id: str) -> Receipt:
    """The receipt of one event as `principal` may see it (this route's and the institution page's).

    ForbiddenError for another institution's event, NotFoundError for an unknown endpoint or an
    event without a receipt (not applied yet, never received, or its month archived).
    """
    stream = next((s for s in STREAMS.values() if s.endpoint == endpoint), None)
    if stream is None:
        raise NotFoundError(f"no stream is posted to /v1/{endpoint}")
    if not principal.may_act_for(org_code):
        raise ForbiddenError("an institution token may ask only for its own events")
    async with pool.acquire() as conn:
        receipt = await find_receipt(conn, stream.name, org_code, event_id)
    if receipt is None:
        raise NotFoundError(f"no receipt for {endpoint} {org_code} {event_id}: not applied yet, or never received")
    return receipt
