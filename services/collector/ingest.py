"""From a request body to records ready to publish: size, media type, JSON, authority, contract."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.requests import Request

from services.contract.models import MAX_BODY_BYTES
from services.contract.validation import (
    BatchTooLargeError,
    BodyShapeError,
    FieldProblem,
    UnreadableJsonError,
    decode_json,
    echo,
    split_body,
)
from services.storage.reference import ReferenceSnapshot
from services.streams import Stream
from services.web.auth import Principal
from services.web.errors import (
    ForbiddenError,
    InvalidEventsError,
    MalformedBodyError,
    PayloadTooLargeError,
    UnsupportedMediaError,
)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def check_declared_body(content_type: str | None, declared: str | None, limit: int = MAX_BODY_BYTES) -> None:
    """Refuse from the headers alone: a wrong media type (415), a Content-Length over `limit` (413)."""
    if not _is_json(content_type):
        raise UnsupportedMediaError("send the body as Content-Type: application/json")
    # isascii: str.isdigit() is also true of "²", which int() refuses.
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"body is {echo(declared)} bytes; at most {limit} are accepted")


async def collect_body(chunks: AsyncIterator[bytes], limit: int = MAX_BODY_BYTES) -> bytes:
    """The body from its chunks, refusing (413) as soon as it passes `limit` bytes."""
    parts = []
    size = 0
    # A chunked body, or one whose Content-Length understates it, is counted as it arrives.
    async for chunk in chunks:
        size += len(chunk)
        check_body_size(size, limit)
        parts.append(chunk)
    return b"".join(parts)


def check_body_size(size: int, limit: int = MAX_BODY_BYTES) -> None:
    """413 once the bytes received pass `limit`."""
    if size > limit:
        raise PayloadTooLargeError(f"body exceeds {limit} bytes")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refusing a wrong media type (415) or more than `limit` bytes (413) without buffering it all."""
    check_declared_body(request.headers.get("content-type"), request.headers.get("content-length"), limit)
    return await collect_body(request.stream(), limit)


def read_json(body: bytes) -> Any:
    """The JSON document of a body; 400 if empty, not JSON, with duplicate keys or nested too deeply."""
    if not body:
        raise MalformedBodyError("empty body; send a JSON document")
    try:
        return decode_json(body)
    except UnreadableJsonError as exc:
        raise MalformedBodyError(str(exc)) from exc


def parse_events(body: bytes) -> list[Any]:
    """The raw event objects of a body (400 unreadable, 413 too many events)."""
    if not body:
        raise MalformedBodyError('empty body; send one event object or {"events": [...]}')
    doc = read_json(body)
    try:
        events, _ = split_body(doc)
    except BatchTooLargeError as exc:
        raise PayloadTooLargeError(str(exc)) from exc
    except BodyShapeError as exc:
        raise MalformedBodyError(str(exc)) from exc
    return events


def authorize(principal: Principal, raw_events: list[Any]) -> None:
    """403 if an institution token submits any event for another institution."""
    if principal.is_admin:
        return
    for index, event in enumerate(raw_events):
        org = event.get("org_code") if isinstance(event, dict) else None
        if org != principal.org_code:
            raise ForbiddenError(
                f"event {index} is for org_code {echo(repr(org))}; this token may only submit for "
                f"{principal.org_code!r}; nothing of this request was kept"
            )


def _reference_problems(stream: Stream[Any], events: Sequence[Any], ref: ReferenceSnapshot) -> list[FieldProblem]:
    problems = []
    known, check = ref.institutions, stream.reference_problems
    for index, event in enumerate(events):
        # Every stream's events name a known institution; the rest is the stream's own check.
        if event.org_code not in known:
            problems.append(FieldProblem(index, "org_code", f"unknown institution {event.org_code!r}"))
            continue
        found = check(event, ref)
        if found:  # almost never: no generator per event
            problems.extend(FieldProblem(index, field, reason) for field, reason in found)
    return problems


def validate_events(stream: Stream[Any], raw_events: list[Any], ref: ReferenceSnapshot) -> int:
    """Check every event against the stream's contract model and the reference data; 422 listing all problems."""
    events, problems = stream.validate(raw_events)
    if not problems:
        problems = _reference_problems(stream, events, ref)
    if problems:
        raise InvalidEventsError(problems, len(raw_events))
    return len(events)
