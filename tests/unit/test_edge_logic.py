"""Pure edge logic: body parsing, authorisation, the topic envelope and settings."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from pydantic import ValidationError

from services.collector.ingest import authorize, parse_events
from services.collector.settings import CollectorSettings
from services.contract.envelope import EnvelopeError, decode_record, encode_records
from services.streams import STREAMS
from services.web.auth import ADMIN, Principal
from services.web.errors import ForbiddenError, MalformedBodyError, PayloadTooLargeError
from tests.fixtures.events import upload


def test_parse_events_single_and_batch() -> None:
    assert len(parse_events(orjson.dumps(upload()))) == 1
    assert len(parse_events(orjson.dumps({"events": [upload(), upload()]}))) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"nul",
        b"[]",
        b'"x"',
        b'{"events": {}}',
        b'{"events": []}',
        b'{"events": [], "x": 1}',
        b"\xff\xfe",
        b'{"a": NaN}',
        b"[" * 100_000,
    ],
)
def test_parse_events_refuses_unreadable_bodies(body: bytes) -> None:
    with pytest.raises(MalformedBodyError):
        parse_events(body)


def test_parse_events_refuses_more_than_1000_events() -> None:
    with pytest.raises(PayloadTooLargeError):
        parse_events(orjson.dumps({"events": [upload()] * 1001}))


def test_institution_may_only_submit_its_own_events() -> None:
    authorize(Principal("D1"), [upload(org_code="D1")])
    authorize(ADMIN, [upload(org_code="D1"), upload(org_code="D2")])
    with pytest.raises(ForbiddenError):
        authorize(Principal("D1"), [upload(org_code="D1"), upload(org_code="D2")])
    with pytest.raises(ForbiddenError):
        authorize(Principal("D1"), ["not an object"])


def test_envelope_groups_by_institution_and_round_trips() -> None:
    events = [upload(org_code="D1"), upload(org_code="D2"), upload(org_code="D1")]
    records = encode_records("upload", events, datetime(2020, 4, 1, tzinfo=UTC))
    assert [(r.key, r.events) for r in records] == [(b"D1", 2), (b"D2", 1)]
    decoded = decode_record(records[0].value, STREAMS)
    assert decoded.stream is STREAMS["upload"]
    assert decoded.events == [events[0], events[2]]


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"not json",
        b"[]",
        b'{"v": 2}',
        b'{"v": 1, "type": "x", "received_at": "2020-01-01T00:00:00Z", "events": []}',
        b'{"v": 1, "type": "upload", "received_at": "2020-01-01T00:00:00", "events": []}',
    ],
)
def test_undecodable_records_raise_envelope_error(value: bytes | None) -> None:
    with pytest.raises(EnvelopeError):
        decode_record(value, STREAMS)


@pytest.mark.parametrize("token", ["changeme", "short", "secret"])
def test_settings_refuse_placeholder_admin_tokens(token: str) -> None:
    with pytest.raises(ValidationError):
        CollectorSettings(admin_token=token)


def test_settings_refuse_unknown_time_zone() -> None:
    with pytest.raises(ValidationError):
        CollectorSettings(admin_token="x" * 32, timezone="Mars/Olympus")
    assert CollectorSettings(admin_token="x" * 32).timezone == "Asia/Shanghai"
