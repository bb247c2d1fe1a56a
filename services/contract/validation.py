"""Turn JSON bodies into contract events, collecting every problem by index, field and reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from services.contract.models import (
    MAX_BATCH_EVENTS,
    KioskTransaction,
    UploadEvent,
)


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One reason an event was refused; `index` is the event's position (0 for a single event)."""

    index: int | None
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form used in the 422 body."""
        return {"index": self.index, "field": self.field, "reason": self.reason}


class BodyShapeError(ValueError):
    """The body is JSON but neither one event object nor `{"events": [...]}`."""


class BatchTooLargeError(ValueError):
    """More events in one batch than the contract allows."""


def split_body(body: Any) -> tuple[list[Any], bool]:
    """Return the raw event objects of a body and whether it was a batch."""
    if not isinstance(body, dict):
        raise BodyShapeError('body must be one event object or {"events": [...]}')
    if "events" not in body:
        return [body], False
    if set(body) != {"events"}:
        extra = sorted(set(body) - {"events"})
        raise BodyShapeError(f"a batch body has only the key 'events'; unexpected: {', '.join(extra)}")
    events = body["events"]
    if not isinstance(events, list):
        raise BodyShapeError("'events' must be an array of event objects")
    if not events:
        raise BodyShapeError("'events' must hold at least one event")
    if len(events) > MAX_BATCH_EVENTS:
        raise BatchTooLargeError(f"a batch holds at most {MAX_BATCH_EVENTS} events; this one has {len(events)}")
    return events, True


_UPLOADS = TypeAdapter(list[UploadEvent])
_KIOSK = TypeAdapter(list[KioskTransaction])


def _problems(exc: ValidationError) -> list[FieldProblem]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = err["loc"]
        index = loc[0] if loc and isinstance(loc[0], int) else None
        field = ".".join(str(part) for part in loc[1:]) or "(event)"
        reason = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            reason = "unknown field"
        elif err["type"] == "model_type":
            reason = "each event must be a JSON object"
        problems.append(FieldProblem(index, field, reason))
    return problems


def validate_uploads(raw: list[Any]) -> tuple[list[UploadEvent], list[FieldProblem]]:
    """Validate raw upload objects; either all events or the problems come back non-empty."""
    try:
        return _UPLOADS.validate_python(raw), []
    except ValidationError as exc:
        return [], _problems(exc)


def validate_kiosk(raw: list[Any]) -> tuple[list[KioskTransaction], list[FieldProblem]]:
    """Validate raw kiosk-transaction objects; either all events or the problems."""
    try:
        return _KIOSK.validate_python(raw), []
    except ValidationError as exc:
        return [], _problems(exc)
