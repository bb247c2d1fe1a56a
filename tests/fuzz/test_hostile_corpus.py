"""A hand-written corpus of hostile bodies against both ingest endpoints, and the admin endpoints.

Every entry is sent as a single event and inside a batch (after one valid event, so the batch
is all-or-nothing), with the admin token and with an institution token. Each must get exactly
the status and error code that docs/contract-decisions.md gives, in the one JSON error shape,
and afterwards nothing of them may be anywhere: the events topic holds only the marker events
posted at the end, and the marker events are the only events the aggregator stored.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import jsonschema
import orjson
import pytest

from services.cli.progress import topic_end_offsets
from services.contract.validation import MAX_ECHO_CHARS, MAX_JSON_DEPTH, MAX_PROBLEMS_PER_EVENT
from tests.fixtures.events import REFERENCE, kiosk, load_reference, upload
from tests.fixtures.stack import KAFKA, REPO, StackConfig, admin_headers, count_events, stored_event_ids, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

ERROR_SCHEMA = json.loads((REPO / "schemas" / "error.schema.json").read_text("utf-8"))
MIB = 1024 * 1024
# No error answer needs more than this, whatever the request held (echoes are bounded).
MAX_ERROR_BYTES = 64 * 1024

Body = bytes | Callable[[], AsyncIterator[bytes]]


@dataclass(frozen=True)
class Endpoint:
    """One ingest endpoint, the institution its default events belong to and its main fields."""

    name: str
    path: str
    org_code: str
    event: Callable[..., dict[str, Any]]
    count_field: str  # the field that carries a number or an amount
    time_field: str


Wrap = Callable[[bytes], bytes]  # one event's text -> the body of the single or the batch form
Make = Callable[[Endpoint, Wrap], Body]  # (endpoint, wrap) -> the body to send

UPLOADS = Endpoint("uploads", "/v1/uploads", "D1", upload, "record_count", "uploaded_at")
KIOSK = Endpoint("kiosk", "/v1/kiosk-transactions", "H1", kiosk, "amount", "occurred_at")

PLACEHOLDER = "__hostile__"


def _event(endpoint: Endpoint, **fields: Any) -> dict[str, Any]:
    return endpoint.event(org_code=endpoint.org_code, **fields)


def _raw(endpoint: Endpoint, field_name: str, raw: bytes) -> bytes:
    """An event whose `field_name` is the raw JSON text `raw` (which orjson could not write)."""
    text = orjson.dumps(_event(endpoint, **{field_name: PLACEHOLDER}))
    return text.replace(orjson.dumps(PLACEHOLDER), raw)


def _single(event: bytes) -> bytes:
    return event


def _batch_for(endpoint: Endpoint) -> Wrap:
    def wrap(event: bytes) -> bytes:
        # The hostile event second, after a valid one: the valid one must not be kept either.
        return b'{"events": [' + orjson.dumps(_event(endpoint)) + b", " + event + b"]}"

    return wrap


@dataclass(frozen=True)
class Hostile:
    """One corpus entry: a body for (endpoint, form) and the answer the contract gives it."""

    name: str
    status: int
    code: str
    body: Make
    content_type: str | None = "application/json"
    field: str | None = None  # with 422: the field the answer must name, at the hostile event's index
    only: tuple[str, ...] = ("uploads", "kiosk")
    forms: tuple[str, ...] = ("single", "batch")
    # The answer for an institution token where the order of checks makes it differ (403 first).
    institution: tuple[int, str] | None = None


def raw(field_name: str | None, text: bytes) -> Make:
    """The event with one field's JSON text replaced (None: the endpoint's count/amount field)."""
    return lambda ep, wrap: wrap(_raw(ep, field_name or ep.count_field, text))


def fields(**values: Any) -> Make:
    """The event with some fields set."""
    return lambda ep, wrap: wrap(orjson.dumps(_event(ep, **values)))


def whole(make: Callable[[Endpoint], bytes]) -> Make:
    """A body that is not an event in a form (the form is irrelevant)."""
    return lambda ep, wrap: make(ep)


def chunked(size: int) -> Make:
    """A body of `size` bytes sent without Content-Length, 64 KiB at a time."""

    def make(ep: Endpoint, wrap: Wrap) -> Body:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"events": ['
            for _ in range(size // 65536):
                yield b" " * 65536
            yield b"]}"

        return chunks

    return make


def padded(size: int) -> Make:
    """A valid event in a body of `size` bytes of whitespace (sent with its Content-Length)."""
    return lambda ep, wrap: wrap(orjson.dumps(_event(ep))) + b" " * size


def nested(depth: int, field_name: str = "event_id") -> Make:
    return raw(field_name, b"[" * depth + b"]" * depth)


def duplicate(key: bytes, value: bytes) -> Make:
    """The event with a second `key` written before the others (orjson alone keeps the last)."""
    return lambda ep, wrap: wrap(b"{" + key + b": " + value + b", " + orjson.dumps(_event(ep))[1:])


def bad(name: str, body: Make, **options: Any) -> Hostile:
    """400 malformed_body: not JSON, JSON we refuse to read, or not an event or a batch."""
    return Hostile(name, 400, "malformed_body", body, **options)


def invalid(name: str, field: str, body: Make, **options: Any) -> Hostile:
    """422 invalid_events naming `field` of the hostile event."""
    return Hostile(name, 422, "invalid_events", body, field=field, **options)


def too_large(name: str, body: Make, **options: Any) -> Hostile:
    return Hostile(name, 413, "payload_too_large", body, **options)


def not_json(content_type: str | None) -> Hostile:
    return Hostile(f"Content-Type {content_type}", 415, "unsupported_media_type", fields(), content_type=content_type)


def at_time(value: Any) -> Make:
    """The event with its timestamp (uploaded_at or occurred_at) set to `value`."""
    return lambda ep, wrap: wrap(orjson.dumps(_event(ep, **{ep.time_field: value})))


def valid_event(ep: Endpoint) -> bytes:
    return orjson.dumps(_event(ep))


UP = {"only": ("uploads",)}
KI = {"only": ("kiosk",)}
TWO_64 = b"18446744073709551616"

CORPUS: list[Hostile] = [
    # Not UTF-8, or not text JSON can carry.
    bad("invalid UTF-8 in a string", raw("event_id", b'"ab\xffcd"')),
    bad("overlong UTF-8", raw("event_id", b'"\xc0\xaf"')),
    bad("UTF-8 encoded surrogate", raw("event_id", b'"\xed\xa0\x80"')),
    bad("lone surrogate escape", raw("event_id", b'"\\ud800"')),
    bad("invalid UTF-8 between tokens", lambda ep, wrap: b"\xff" + wrap(b"{}")),
    bad("byte order mark", lambda ep, wrap: b"\xef\xbb\xbf" + wrap(valid_event(ep))),
    bad("raw control character in a string", raw("event_id", b'"a\x01b"')),
    bad("raw NUL byte in a string", raw("event_id", b'"a\x00b"')),
    # Duplicate keys: refused, never "the last one wins".
    bad("duplicate key", duplicate(b'"event_id"', b'"dup-1"')),
    bad(
        "duplicate key, identical value", lambda ep, wrap: duplicate(b'"org_code"', orjson.dumps(ep.org_code))(ep, wrap)
    ),
    bad("duplicate key written with an escape", duplicate(b'"event\\u005fid"', b'"x"')),
    bad("duplicate key hiding another institution", duplicate(b'"org_code"', b'"D2"')),
    bad("duplicate key with a colon in its value", duplicate(b'"event_id"', b'"a:b:c"')),
    bad("duplicate events key", whole(lambda ep: b'{"events": [], "events": [' + valid_event(ep) + b"]}")),
    # Numbers JSON or the contract does not have (1e3, -0 and 5.0 are integers: see the test below).
    bad("NaN", raw(None, b"NaN")),
    bad("Infinity", raw(None, b"Infinity")),
    bad("-Infinity", raw(None, b"-Infinity")),
    bad("1e400 (beyond a double)", raw(None, b"1e400")),
    bad("400-digit integer", raw(None, b"9" * 400)),
    invalid("1.5 records", "record_count", raw("record_count", b"1.5"), **UP),
    invalid("-1e3 records", "record_count", raw("record_count", b"-1e3"), **UP),
    invalid("2**64 records", "record_count", raw("record_count", TWO_64), **UP),
    invalid("2**64 documents", "document_count", raw("document_count", TWO_64), **UP),
    invalid("-2**63-1 records", "record_count", raw("record_count", b"-9223372036854775809"), **UP),
    invalid("10,000,001 records", "record_count", fields(record_count=10_000_001), **UP),
    invalid("records as a string", "record_count", fields(record_count="5"), **UP),
    invalid("records as a boolean", "record_count", fields(record_count=True), **UP),
    # Amounts: decimal strings, at most two fraction digits, never numbers.
    invalid("amount with three decimals", "amount", fields(amount="1.234"), **KI),
    invalid("amount as a JSON number", "amount", raw("amount", b"12.50"), **KI),
    invalid("amount in exponent form", "amount", fields(amount="1e3"), **KI),
    invalid("amount -0", "amount", fields(amount="-0"), **KI),
    invalid("amount 2**64", "amount", fields(amount=TWO_64.decode()), **KI),
    invalid("amount with a leading zero", "amount", fields(amount="01.00"), **KI),
    invalid("amount NaN as a string", "amount", fields(amount="NaN"), **KI),
    # Timestamps and dates.
    invalid("timestamp without offset", "(time)", at_time("2020-04-10T10:00:00")),
    invalid("timestamp with a space", "(time)", at_time("2020-04-10 10:00:00+08:00")),
    invalid("timestamp as a Unix number", "(time)", at_time(1586484000)),
    invalid("timestamp with a final newline", "(time)", at_time("2020-04-10T10:00:00+08:00\n")),
    invalid("timestamp in year 9999", "(time)", at_time("9999-12-31T23:59:59Z")),
    invalid("business date with a time", "business_date", fields(business_date="2020-04-10T00:00:00+08:00"), **UP),
    invalid("business date 2020-02-30", "business_date", fields(business_date="2020-02-30"), **UP),
    # Sizes.
    too_large("10 MB body with Content-Length", padded(10 * MIB)),
    too_large("10 MB body, chunked", chunked(10 * MIB)),
    Hostile("10 MB body, not JSON", 415, "unsupported_media_type", padded(10 * MIB), content_type="text/plain"),
    too_large("1 MiB + 1 byte", whole(lambda ep: b"[" + b" " * (MIB - 1) + b"]")),
    too_large("1,001 events", whole(lambda ep: orjson.dumps({"events": [_event(ep) for _ in range(1001)]}))),
    too_large("2 MB event_id", fields(event_id="a" * (2 * MIB))),
    invalid("900 KB event_id", "event_id", fields(event_id="a" * (900 * 1024))),
    invalid("event_id of 129 characters", "event_id", fields(event_id="e" * 129)),
    invalid("empty event_id", "event_id", fields(event_id="")),
    # Nesting.
    bad("100,000-deep array", whole(lambda ep: b"[" * 100_000 + b"]" * 100_000)),
    bad("100,000-deep objects", whole(lambda ep: b'{"a":' * 100_000 + b"1" + b"}" * 100_000)),
    bad("100,000-deep value in an event", nested(100_000)),
    # In an event, a value MAX_JSON_DEPTH deep makes the body deeper than the bound.
    bad("value past the depth bound", nested(MAX_JSON_DEPTH)),
    invalid("200-deep value (within the bound)", "event_id", nested(200)),
    # Fields the contract does not have, and values it does not allow.
    invalid("unknown field", "surprise", fields(surprise=1)),
    invalid("misspelt field", "recordcount", fields(recordcount=5)),
    invalid("100 KB field name", "x" * MAX_ECHO_CHARS + "…", fields(**{"x" * 100_000: 1})),
    invalid("5,000 unknown fields", "f0", fields(**{f"f{n}": n for n in range(5000)})),
    invalid("NUL escaped in event_id", "event_id", fields(event_id="a\u0000b")),
    invalid("newline in event_id", "event_id", fields(event_id="abc\n")),
    invalid("tab in table_code", "table_code", fields(table_code="OPV\t"), **UP),
    invalid("tab in kiosk_id", "kiosk_id", fields(kiosk_id="K-H1-1\t"), **KI),
    invalid("null event_id", "event_id", fields(event_id=None)),
    invalid("null document_count", "document_count", fields(document_count=None), **UP),
    invalid("null amount", "amount", fields(amount=None), **KI),
    invalid("unknown mode", "mode", fields(mode="REALTIME"), **UP),
    invalid("unknown kind", "kind", fields(kind="refund"), **KI),
    invalid(
        "missing event_id",
        "event_id",
        lambda ep, wrap: wrap(orjson.dumps({k: v for k, v in _event(ep).items() if k != "event_id"})),
    ),
    invalid(
        "an event that is not an object",
        "(event)",
        lambda ep, wrap: wrap(b"42"),
        forms=("batch",),  # alone, it is a body that is not an object: 400
        # An institution token may submit only events of its own org_code; 42 has none.
        institution=(403, "forbidden"),
    ),
    # Bodies that are not one event object or {"events": [...]}.
    bad("empty body", whole(lambda ep: b"")),
    bad("whitespace only", whole(lambda ep: b" \n\t ")),
    bad("top-level array", whole(lambda ep: b"[" + valid_event(ep) + b"]")),
    bad("top-level string", whole(lambda ep: b'"event"')),
    bad("top-level number", whole(lambda ep: b"1")),
    bad("top-level null", whole(lambda ep: b"null")),
    bad("top-level true", whole(lambda ep: b"true")),
    bad("empty batch", whole(lambda ep: b'{"events": []}')),
    bad("events null", whole(lambda ep: b'{"events": null}')),
    bad("events an object", whole(lambda ep: b'{"events": {}}')),
    bad("batch with another key", whole(lambda ep: b'{"events": [' + valid_event(ep) + b'], "x": 1}')),
    bad("trailing garbage", lambda ep, wrap: wrap(valid_event(ep)) + b" x"),
    bad("two documents", lambda ep, wrap: wrap(valid_event(ep)) * 2),
    bad("trailing comma", lambda ep, wrap: wrap(valid_event(ep)[:-1] + b",}")),
    bad("single quotes", whole(lambda ep: b"{'events': []}")),
    bad("a comment", lambda ep, wrap: b"/* hi */" + wrap(valid_event(ep))),
    # Media types.
    not_json("text/plain"),
    not_json(None),
    not_json("application/x-www-form-urlencoded"),
    not_json("application/jsonx"),
    not_json("multipart/form-data; boundary=x"),
]

# Field names an entry leaves to the endpoint.
_FIELD_OF = {
    ("uploads", "(time)"): "uploaded_at",
    ("kiosk", "(time)"): "occurred_at",
}


async def _post(
    client: httpx.AsyncClient, path: str, body: Body, content_type: str | None, headers: dict[str, str]
) -> httpx.Response:
    sent = dict(headers)
    if content_type is not None:
        sent["Content-Type"] = content_type
    # bytes go with their Content-Length; a generator goes chunked, with none.
    return await client.post(path, content=body() if callable(body) else body, headers=sent)


def _error_problems(response: httpx.Response, status: int, code: str) -> list[str]:
    """What is wrong with an error answer: not `status`, not `code`, not the one shape, too big."""
    if response.status_code != status:
        return [f"expected {status} {code}, got {response.status_code}: {response.text[:300]}"]
    problems = []
    if response.headers.get("content-type") != "application/json":
        problems.append(f"content type {response.headers.get('content-type')!r}")
    body = response.json()
    try:
        jsonschema.validate(body, ERROR_SCHEMA)
    except jsonschema.ValidationError as exc:
        problems.append(f"not the error shape: {exc.message}")
    if body.get("error") != code:
        problems.append(f"error {body.get('error')!r}, expected {code!r}")
    if not body.get("detail"):
        problems.append("no detail")
    if len(response.content) > MAX_ERROR_BYTES:
        problems.append(f"answer of {len(response.content)} bytes")
    return problems


def _check(entry: Hostile, endpoint: Endpoint, batch: bool, who: str, response: httpx.Response) -> list[str]:
    status, code = entry.status, entry.code
    if who == "institution" and entry.institution is not None:
        status, code = entry.institution
    problems = _error_problems(response, status, code)
    if problems or status != 422 or entry.field is None:
        return problems
    field = _FIELD_OF.get((endpoint.name, entry.field), entry.field)
    errors = {(e["index"], e["field"]) for e in response.json()["errors"]}
    index = 1 if batch else 0
    if (index, field) not in errors:
        problems.append(f"422 does not name ({index}, {field!r}): {sorted(errors)[:5]}")
    if batch and any(i == 0 for i, _ in errors):
        problems.append("422 names the valid event 0")
    if len([e for e in errors if e[0] == index]) > MAX_PROBLEMS_PER_EVENT + 1:
        problems.append("more problems listed for one event than the bound")
    return problems


async def _token(collector: httpx.AsyncClient, org_code: str) -> dict[str, str]:
    response = await collector.post("/v1/admin/tokens", json={"org_code": org_code}, headers=admin_headers())
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def _only_markers_kept(
    collector: httpx.AsyncClient,
    db: asyncpg.Connection,
    config: StackConfig,
    markers: list[tuple[Endpoint, dict[str, str]]],
) -> None:
    """Post one valid marker event per endpoint; they must be the only records and stored events."""
    ids = []
    for endpoint, headers in markers:
        marker = _event(endpoint, event_id=f"marker-{endpoint.name}")
        response = await collector.post(endpoint.path, json=marker, headers=headers)
        assert response.status_code == 202, response.text
        ids.append(marker["event_id"])

    async def stored() -> bool:
        return await count_events(db) >= len(ids)

    await wait_for(stored, "marker events stored")
    # Exact, whatever partition a wrongly accepted event went to: one record per marker request.
    ends = await topic_end_offsets(KAFKA, config.events_topic, config.collector_settings().events_partitions)
    assert sum(ends.values()) == len(ids), f"records on the events topic: {ends}"
    assert sorted(await stored_event_ids(db)) == sorted(ids)


@pytest.mark.parametrize("who", ["admin", "institution"])
@pytest.mark.parametrize("endpoint", [UPLOADS, KIOSK], ids=lambda ep: ep.name)
async def test_hostile_bodies_get_the_contract_answer_and_nothing_is_kept(
    collector: httpx.AsyncClient,
    aggregator: httpx.AsyncClient,
    db: asyncpg.Connection,
    stack_config: StackConfig,
    endpoint: Endpoint,
    who: str,
) -> None:
    await load_reference(collector, admin_headers())
    headers = admin_headers() if who == "admin" else await _token(collector, endpoint.org_code)
    mismatches = []
    for entry in CORPUS:
        if endpoint.name not in entry.only:
            continue
        for form, wrap in (("single", _single), ("batch", _batch_for(endpoint))):
            if form not in entry.forms:
                continue
            response = await _post(collector, endpoint.path, entry.body(endpoint, wrap), entry.content_type, headers)
            mismatches += [
                f"{entry.name} ({form}): {p}" for p in _check(entry, endpoint, form == "batch", who, response)
            ]
    assert not mismatches, "\n".join(mismatches)
    await _only_markers_kept(collector, db, stack_config, [(endpoint, headers)])


async def test_edge_values_the_contract_accepts_are_stored_exactly(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The other side of the corpus: what docs/contract-decisions.md accepts is kept, as meant."""
    await load_reference(collector, admin_headers())
    json_headers = {**admin_headers(), "Content-Type": "application/json"}
    # Integers follow JSON Schema (decision 2): any number without a fraction, -0 being 0.
    uploads = {
        "exp-1e3": (_raw(UPLOADS, "record_count", b"1e3").replace(b'"u-', b'"exp-1e3-'), 1000),
        "minus-zero": (_raw(UPLOADS, "record_count", b"-0"), 0),
        "minus-zero-float": (_raw(UPLOADS, "record_count", b"-0.0"), 0),
        "five-point-zero": (_raw(UPLOADS, "record_count", b"5.0"), 5),
        "largest": (orjson.dumps(_event(UPLOADS, record_count=10_000_000)), 10_000_000),
    }
    expected: dict[str, int] = {}
    for name, (body, count) in uploads.items():
        event_id = orjson.loads(body)["event_id"]
        response = await collector.post("/v1/uploads", content=body, headers=json_headers)
        assert (response.status_code, response.json()) == (202, {"accepted": 1}), (name, response.text)
        expected[event_id] = count
    longest = _event(UPLOADS, event_id="e" * 128, record_count=7)
    # Exactly 1 MiB (whitespace after the event) is still within the bound.
    body = orjson.dumps(longest)
    response = await collector.post("/v1/uploads", content=body + b" " * (MIB - len(body)), headers=json_headers)
    assert response.status_code == 202, response.text
    expected[longest["event_id"]] = 7
    # The same event twice in one batch: both acknowledged (decision 9), counted once.
    twice = _event(UPLOADS, event_id="twice", record_count=3)
    response = await collector.post("/v1/uploads", json={"events": [twice, twice]}, headers=admin_headers())
    assert (response.status_code, response.json()) == (202, {"accepted": 2})
    expected["twice"] = 3
    amounts = {"amount-max": "999999999999.99", "amount-zero": "0", "amount-one-digit": "0.5"}
    for event_id, amount in amounts.items():
        event = _event(KIOSK, event_id=event_id, amount=amount, occurred_at="2020-04-10T10:00:00.123456789+08:00")
        response = await collector.post("/v1/kiosk-transactions", json=event, headers=admin_headers())
        assert response.status_code == 202, response.text

    async def stored() -> bool:
        return await count_events(db) == len(expected) + len(amounts)

    await wait_for(stored, "the accepted events stored")
    rows = await db.fetch("SELECT event_id, record_count FROM upload_events")
    assert {r["event_id"]: r["record_count"] for r in rows} == expected
    rows = await db.fetch("SELECT event_id, amount::text FROM kiosk_transactions")
    assert {r["event_id"]: r["amount"] for r in rows} == {
        "amount-max": "999999999999.99",
        "amount-zero": "0.00",
        "amount-one-digit": "0.50",
    }


async def test_an_amount_with_a_final_newline_is_refused(collector: httpx.AsyncClient) -> None:
    await load_reference(collector, admin_headers())
    event = _event(KIOSK, amount="12.50\n")
    response = await collector.post("/v1/kiosk-transactions", json=event, headers=admin_headers())
    assert _error_problems(response, 422, "invalid_events") == []


def _reference_with(**changes: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    return {**{k: [dict(r) for r in v] for k, v in REFERENCE.items()}, **changes}


REF, TOKENS, JSON = "PUT /v1/admin/reference", "POST /v1/admin/tokens", "application/json"
E400, E404 = (400, "malformed_body"), (404, "not_found")
E413, E415, E422 = (413, "payload_too_large"), (415, "unsupported_media_type"), (422, "invalid_request")


async def test_admin_endpoints_refuse_hostile_bodies_and_change_nothing(
    collector: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    version = await db.fetchval("SELECT version FROM reference_current")
    nul_name = [{"org_code": "D9", "name": "a\u0000b", "kind": "district"}, *REFERENCE["institutions"]]
    dangling = [{"org_code": f"Z{n}", "table_code": "OPV"} for n in range(20_000)]

    async def chunks_of_17_mib() -> AsyncIterator[bytes]:
        for _ in range(17 * 16):
            yield b" " * 65536

    cases: list[tuple[str, str, Body, tuple[int, str], str | None]] = [
        (REF, "NUL in a name", orjson.dumps(_reference_with(institutions=nul_name)), E422, JSON),
        (REF, "duplicate key", b'{"kiosks": [], ' + orjson.dumps(REFERENCE)[1:], E400, JSON),
        (REF, "100,000-deep", b"[" * 100_000 + b"]" * 100_000, E400, JSON),
        (REF, "17 MiB", b" " * (17 * MIB), E413, JSON),
        (REF, "17 MiB chunked", chunks_of_17_mib, E413, JSON),
        (REF, "text/plain", orjson.dumps(REFERENCE), E415, "text/plain"),
        (REF, "empty", b"", E400, JSON),
        (REF, "unknown key", orjson.dumps({**REFERENCE, "x": []}), E422, JSON),
        (REF, "20,000 dangling references", orjson.dumps(_reference_with(declarations=dangling)), E422, JSON),
        (TOKENS, "NUL in the label", orjson.dumps({"org_code": "D1", "label": "a\u0000"}), E422, JSON),
        (TOKENS, "newline in the label", orjson.dumps({"org_code": "D1", "label": "a\nb"}), E422, JSON),
        (TOKENS, "NUL in org_code", orjson.dumps({"org_code": "D1\u0000"}), E422, JSON),
        (TOKENS, "unknown institution", orjson.dumps({"org_code": "ZZ"}), E422, JSON),
        (TOKENS, "unknown field", orjson.dumps({"org_code": "D1", "x": 1}), E422, JSON),
        (TOKENS, "an array", orjson.dumps([{"org_code": "D1"}]), E422, JSON),
        (TOKENS, "duplicate key", b'{"org_code": "D1", "org_code": "D2"}', E400, JSON),
        (TOKENS, "1.2 MB", b'{"org_code":' * 100_000, E413, JSON),
        (TOKENS, "5,000-deep", b"[" * 5_000 + b"]" * 5_000, E400, JSON),
        (
            TOKENS,
            "300-deep (past the bound)",
            b'{"org_code": "D1", "label": ' + b"[" * 300 + b"]" * 300 + b"}",
            E400,
            JSON,
        ),
        (TOKENS, "text/plain", orjson.dumps({"org_code": "D1"}), E415, "text/plain"),
        ("DELETE /v1/admin/tokens/a%00b", "NUL in the id", b"", E422, None),
        ("DELETE /v1/admin/tokens/" + "a" * 65, "65-character id", b"", E422, None),
        ("DELETE /v1/admin/tokens/nope", "unknown id", b"", E404, None),
    ]
    mismatches = []
    for target, name, body, (status, code), content_type in cases:
        method, path = target.split(" ")
        headers = admin_headers() | ({"Content-Type": content_type} if content_type else {})
        response = await collector.request(method, path, content=body() if callable(body) else body, headers=headers)
        mismatches += [f"{method} {path[:40]} {name}: {p}" for p in _error_problems(response, status, code)]
    assert not mismatches, "\n".join(mismatches)
    assert await db.fetchval("SELECT version FROM reference_current") == version
    assert await db.fetchval("SELECT count(*) FROM api_tokens") == 0
    assert [r["action"] for r in await db.fetch("SELECT action FROM admin_audit")] == ["reference.load"]

    # An institution token is refused before its body is read: 403, whatever the body.
    institution = await _token(collector, "D1")
    for body in (b" " * (17 * MIB), b"[" * 100_000):
        response = await collector.put("/v1/admin/reference", content=body, headers=institution)
        assert _error_problems(response, 403, "forbidden") == []


# Months and days outside the years 1900-9998, or not written YYYY-MM / YYYY-MM-DD (a final
# newline once passed the month check and reached the CSV's Content-Disposition header).
REPORT_QUERIES: list[tuple[str, dict[str, str]]] = [
    ("/v1/reports/uploads", {"kind": "district", "month": "0000-01"}),
    ("/v1/reports/uploads", {"kind": "district", "month": "9999-12"}),
    ("/v1/reports/uploads", {"kind": "district", "month": "2020-04\n", "format": "csv"}),
    ("/v1/reports/uploads", {"kind": "district", "month": "2020-4"}),
    ("/v1/reports/uploads", {"kind": "district", "month": "2020-04" * 2000}),
    ("/v1/reports/uploads", {"kind": "clinic", "month": "2020-04"}),
    ("/v1/reports/uploads", {"kind": "district", "month": "2020-04", "format": "xml"}),
    ("/v1/reports/kiosks", {"month": "0000-01"}),
    ("/v1/reports/kiosks", {"month": "9999-12", "format": "csv"}),
    ("/v1/reports/kiosks", {"month": "2020-04\r\nX-Injected: 1", "format": "csv"}),
    ("/v1/reports/bulletin", {"month": "0000-01"}),
    ("/v1/alerts/missing-uploads", {"date": "0"}),
    ("/v1/alerts/missing-uploads", {"date": "0001-01-01"}),
    ("/v1/alerts/missing-uploads", {"date": "9999-12-31"}),
    ("/v1/alerts/missing-uploads", {"date": "2020-02-30"}),
    ("/v1/alerts/missing-uploads", {"date": "2020-04-10T00:00:00"}),
    ("/v1/alerts/missing-uploads", {"date": "2020-04-10\n"}),
]


async def test_report_parameters_outside_the_calendar_are_422(aggregator: httpx.AsyncClient) -> None:
    mismatches = []
    for path, params in REPORT_QUERIES:
        response = await aggregator.get(path, params=params, headers=admin_headers())
        mismatches += [f"{path} {params}: {p}" for p in _error_problems(response, 422, "invalid_request")]
    assert not mismatches, "\n".join(mismatches)
