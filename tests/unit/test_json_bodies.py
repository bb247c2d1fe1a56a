"""Reading JSON bodies: duplicate keys and nesting refused, orjson's speed kept, echoes bounded."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.collector.ingest import authorize, parse_events
from services.contract.validation import (
    MAX_ECHO_CHARS,
    MAX_JSON_DEPTH,
    MAX_PROBLEMS_PER_EVENT,
    UnreadableJsonError,
    decode_json,
    split_body,
)
from services.streams import STREAMS
from services.web.auth import Principal
from services.web.errors import ForbiddenError, MalformedBodyError
from tests.fixtures.events import upload

pytestmark = pytest.mark.fuzz


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "a": 1}',
        b'{"a": 1, "b": {"c": 1, "c": 2}}',
        b'[{"x": 1}, {"x": 1, "x": 1}]',
        b'{"a\\u003ab": 1, "a:b": 2}',  # the same key, once escaped
        b'{"a": "x:y", "a": "z"}',  # the dropped value's colon must not hide the dropped key
        b'{"k": "\\\\u003a", "k": "\\\\u003a"}',  # text that looks like an escaped colon
        b'{"\\u0061": 1, "a": 2}',
    ],
)
def test_duplicate_keys_are_refused_wherever_they_are(body: bytes) -> None:
    with pytest.raises(UnreadableJsonError, match="duplicate key"):
        decode_json(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "10:15:00+08:00", "b": "x\\u003ay", "c": "\\u003A"}',  # colons in strings, escaped or not
        b'{"k": "\\\\u003a"}',  # counts as an escape but is not one: the exact check clears it
        b'{"a:b": 1, "c": {"d:e": [1, {"f": 2}]}}',
        b"[]",
        b'"x"',
    ],
)
def test_documents_without_duplicates_read_as_orjson_reads_them(body: bytes) -> None:
    assert decode_json(body) == orjson.loads(body)


def test_nesting_is_bounded_at_max_json_depth() -> None:
    assert decode_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None
    assert decode_json(b'{"a":' * (MAX_JSON_DEPTH - 1) + b"{}" + b"}" * (MAX_JSON_DEPTH - 1)) is not None
    for body in (
        b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
        b'{"a":' * MAX_JSON_DEPTH + b"{}" + b"}" * MAX_JSON_DEPTH,
        b"[" * 100_000 + b"]" * 100_000,
    ):
        with pytest.raises(UnreadableJsonError):
            decode_json(body)


def test_parse_events_answers_400_for_duplicates() -> None:
    event = orjson.dumps(upload())
    with pytest.raises(MalformedBodyError, match="duplicate key 'record_count'"):
        parse_events(b'{"record_count": 500, ' + event[1:])


def test_echoed_client_text_is_bounded() -> None:
    key = "k" * 100_000
    with pytest.raises(UnreadableJsonError) as dup:
        decode_json(orjson.dumps({key: 1})[:-1] + b", " + orjson.dumps(key) + b": 2}")
    assert len(str(dup.value)) < 2 * MAX_ECHO_CHARS
    with pytest.raises(ValueError, match=r"\(\+995 more\)") as extra:
        split_body({"events": [], **{f"x{n}": n for n in range(1000)}})
    assert len(str(extra.value)) < 10 * MAX_ECHO_CHARS
    with pytest.raises(ForbiddenError) as forbidden:
        authorize(Principal("D1"), [upload(org_code="D" * 100_000)])
    assert len(forbidden.value.detail) < 4 * MAX_ECHO_CHARS


def test_problems_per_event_are_bounded_but_every_bad_event_is_listed() -> None:
    flooded: dict[str, Any] = upload(record_count=-1, **{f"x{n}": n for n in range(1000)})
    _, problems = STREAMS["upload"].validate([upload(), flooded, upload(event_id="")])
    by_event = [(p.index, p.field) for p in problems]
    assert by_event[0] == (1, "record_count")
    assert by_event.count((1, "(event)")) == 1  # the summary of what was not listed
    assert len([p for p in problems if p.index == 1]) == MAX_PROBLEMS_PER_EVENT + 1
    assert problems[MAX_PROBLEMS_PER_EVENT].reason == f"and {1001 - MAX_PROBLEMS_PER_EVENT} more problems"
    assert by_event[-1] == (2, "event_id")
