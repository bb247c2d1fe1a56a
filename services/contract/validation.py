"""Turn JSON bodies into contract events, collecting every problem by index, field and reason."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from services.contract.models import MAX_BATCH_EVENTS


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


class UnreadableJsonError(ValueError):
    """Bytes that are not one JSON document we read: invalid JSON, duplicate keys, or nested too deeply."""


# Deepest nesting read (the contract's documents need 3 levels). It is the depth orjson can write
# back, which the duplicate-key check below relies on; orjson itself reads at most 1,024 levels.
MAX_JSON_DEPTH = 254
# How much of a client's text (a field name, an unexpected key) an error answer echoes.
MAX_ECHO_CHARS = 64


def echo(text: str) -> str:
    """`text` shortened for an error answer, so a hostile 1 MiB key is not sent back whole."""
    return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "…"


def decode_json(body: bytes) -> Any:
    """One JSON document, with orjson's speed; refuses what orjson would silently accept.

    orjson keeps the last of duplicate keys, so `{"record_count": 5, "record_count": 500}` would
    count whatever the client's serialiser happened to write last. Checking every object with the
    standard library's `object_pairs_hook` costs several times orjson's parse, so a count of
    colons decides first: each key of the body has one colon after it, and the same document
    written back by orjson has one per key it kept; every other colon is inside a string, and is
    there in both (a string's colon escaped as \\u003a is counted from the body separately). So
    the counts agree exactly when no key was dropped, and only bodies where they disagree (in
    practice: bodies with duplicate keys) are parsed a second time to find the duplicate.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UnreadableJsonError(f"body is not valid JSON: {exc}") from exc
    try:
        written = orjson.dumps(doc)
    except orjson.JSONEncodeError as exc:
        raise UnreadableJsonError(f"body is nested deeper than {MAX_JSON_DEPTH} levels") from exc
    # Most bodies have no backslash at all, and looking for one byte is much cheaper than two counts.
    escaped = body.count(b"\\u003a") + body.count(b"\\u003A") if b"\\" in body else 0
    if body.count(b":") + escaped != written.count(b":"):
        # Counts can also disagree without duplicates (text such as "\\u003a", a backslash
        # then u003a, counts as an escape above); only the exact check decides.
        json.loads(body, object_pairs_hook=_refuse_duplicate_keys)
    return doc


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise UnreadableJsonError(f"duplicate key {echo(key)!r} in a JSON object")
        obj[key] = value
    return obj


def split_body(body: Any) -> tuple[list[Any], bool]:
    """Return the raw event objects of a body and whether it was a batch."""
    if not isinstance(body, dict):
        raise BodyShapeError('body must be one event object or {"events": [...]}')
    if "events" not in body:
        return [body], False
    if set(body) != {"events"}:
        extra = sorted(set(body) - {"events"})
        shown = ", ".join(echo(key) for key in extra[:5]) + (f" (+{len(extra) - 5} more)" if len(extra) > 5 else "")
        raise BodyShapeError(f"a batch body has only the key 'events'; unexpected: {shown}")
    events = body["events"]
    if not isinstance(events, list):
        raise BodyShapeError("'events' must be an array of event objects")
    if not events:
        raise BodyShapeError("'events' must hold at least one event")
    if len(events) > MAX_BATCH_EVENTS:
        raise BatchTooLargeError(f"a batch holds at most {MAX_BATCH_EVENTS} events; this one has {len(events)}")
    return events, True


# An event has at most 8 fields, so this lists every problem of its own fields; past it, only
# more unknown fields, and one event of a 1 MiB body could otherwise make 100,000 of them.
MAX_PROBLEMS_PER_EVENT = 20


def field_problems(exc: ValidationError) -> list[FieldProblem]:
    """A list validation's errors as problems by index, field and reason (MAX_PROBLEMS_PER_EVENT per event)."""
    by_event: dict[int | None, list[FieldProblem]] = {}
    unlisted: dict[int | None, int] = {}
    for err in exc.errors(include_url=False, include_input=False):
        loc = err["loc"]
        index = loc[0] if loc and isinstance(loc[0], int) else None
        listed = by_event.setdefault(index, [])
        if len(listed) == MAX_PROBLEMS_PER_EVENT:
            unlisted[index] = unlisted.get(index, 0) + 1
            continue
        field = echo(".".join(str(part) for part in loc[1:])) or "(event)"
        reason = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            reason = "unknown field"
        elif err["type"] == "model_type":
            reason = "each event must be a JSON object"
        listed.append(FieldProblem(index, field, reason))
    for index, count in unlisted.items():
        by_event[index].append(FieldProblem(index, "(event)", f"and {count} more problems"))
    return [problem for listed in by_event.values() for problem in listed]
