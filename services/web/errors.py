"""Errors a client can act on, each mapped to one status and the one JSON error shape.

ApiError                     {"error": code, "detail": text, ...}
├── MalformedBodyError       400 not JSON / not an event object or batch
├── UnauthenticatedError     401 missing or unknown token
├── ForbiddenError           403 token may not do this (another institution's events)
├── NotFoundError            404
├── ConflictError            409 not in a state that allows this
├── PayloadTooLargeError     413 body over 1 MiB or batch over 1,000 events
├── UnsupportedMediaError    415 not application/json
├── InvalidEventsError       422 with every bad event by index, field and reason
├── InvalidRequestError      422 bad query parameters or reference data
└── UnavailableError         503 with Retry-After: cannot be made durable now
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from services.contract.validation import FieldProblem
from services.web.responses import JsonResponse
from services.web.schemas import load_schema

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Base: an answer other than success, with a stable code."""

    status = 500
    code = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        return {"error": self.code, "detail": self.detail}

    def headers(self) -> dict[str, str]:
        """Extra response headers."""
        return {}


class MalformedBodyError(ApiError):
    """400: the body cannot be read as the contract's JSON."""

    status = 400
    code = "malformed_body"


class UnauthenticatedError(ApiError):
    """401: no token, or one the platform does not know (or revoked)."""

    status = 401
    code = "unauthenticated"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class ForbiddenError(ApiError):
    """403: authenticated, but not allowed to do this."""

    status = 403
    code = "forbidden"


class NotFoundError(ApiError):
    """404."""

    status = 404
    code = "not_found"


class ConflictError(ApiError):
    """409: the resource is not in a state that allows this (archiving a month that is not closed)."""

    status = 409
    code = "conflict"


class PayloadTooLargeError(ApiError):
    """413: body or batch over the contract's bounds."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaError(ApiError):
    """415: the body is not declared as JSON."""

    status = 415
    code = "unsupported_media_type"


class InvalidRequestError(ApiError):
    """422: request parameters or a reference set that cannot be used."""

    status = 422
    code = "invalid_request"

    def __init__(self, detail: str, problems: Sequence[str] = ()) -> None:
        super().__init__(detail)
        self.problems = list(problems)

    def body(self) -> dict[str, Any]:
        body = super().body()
        if self.problems:
            body["problems"] = self.problems
        return body


class InvalidEventsError(ApiError):
    """422: at least one event breaks the contract; none of the request was kept."""

    status = 422
    code = "invalid_events"

    def __init__(self, problems: Sequence[FieldProblem], total: int) -> None:
        bad = len({p.index for p in problems})
        super().__init__(f"{bad} of {total} events are invalid; nothing of this request was kept")
        self.problems = list(problems)

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["errors"] = [p.as_dict() for p in self.problems]
        return body


class TooManyRequestsError(ApiError):
    """429: this institution sends faster than its rate limit; retry after the pause."""

    status = 429
    code = "rate_limited"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class UnavailableError(ApiError):
    """503: the events cannot be made durable now; retry the same events later."""

    status = 503
    code = "unavailable"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


_ERROR_DESCRIPTIONS = {
    400: "Unreadable body: not JSON, duplicate keys, nested too deeply, or the wrong shape",
    401: "Missing or unknown token",
    403: "The token may not do this",
    404: "Not found",
    409: "Not possible in the resource's current state",
    413: "Body too large",
    415: "Content-Type is not application/json",
    422: "Invalid request parameters or body, with every problem",
    429: "Over the rate limit; see Retry-After",
    503: "Cannot be done now; see Retry-After",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` declaring the one error shape for each of `statuses`.

    Without them FastAPI documents its own 422 shape, which these services never send.
    """
    schema = load_schema("error.schema.json")
    return {
        status: {"description": _ERROR_DESCRIPTIONS[status], "content": {"application/json": {"schema": schema}}}
        for status in statuses
    }


def error_response(exc: ApiError) -> JsonResponse:
    """The one JSON error shape."""
    return JsonResponse(exc.body(), status_code=exc.status, headers=exc.headers())


async def _api_error(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return JsonResponse(
        {"error": codes.get(exc.status_code, "http_error"), "detail": str(exc.detail)},
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _validation_error(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
    return error_response(InvalidRequestError("invalid request parameters", problems))


# nginx's "client closed request": the client left before the request was read, so there is
# nobody to answer and nothing was accepted. Not a 5xx, which would page the on-call.
CLIENT_CLOSED_REQUEST = 499


def log_client_gone(path: str, method: str) -> None:
    """Log a client that left mid-request (routine: timeouts, load generators stopping)."""
    log.info("client disconnected before its request was read", extra={"path": path, "method": method})


async def _client_gone(request: Request, exc: Exception) -> Response:
    log_client_gone(request.url.path, request.method)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _unexpected(request: Request, exc: Exception) -> JsonResponse:
    # The last resort still answers in the one shape; the traceback goes to the log.
    log.exception("unhandled error", extra={"path": request.url.path, "method": request.method})
    return JsonResponse({"error": "internal_error", "detail": "internal error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to the one JSON shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
