"""Every stream of the registry conforms to what the generic code assumes of it (pure checks).

One test module for all streams, parametrised over `STREAMS` (as the OpenTelemetry
Collector's generated component tests): a stream added to the registry is checked here
without writing a test for it. The database side (tables after the migrations, COPY
round trip, rebuild = live) is tests/integration/test_streams_conformance.py.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry

from services.aggregator.decoding import DeadLetter, decode_into, unstorable
from services.aggregator.store import copy_text, first_of_each_key
from services.collector.app import create_app
from services.collector.ingest_asgi import INGEST_PATHS
from services.collector.settings import CollectorSettings
from services.contract.envelope import encode_records
from services.contract.models import ContractEvent
from services.streams import STREAMS, ConsumedEvent, Stream
from services.streams.base import ORIGIN_COLUMNS, DuplicateStreamError, registry
from services.streams.copytext import COPY_SPECIAL
from services.streams.rollups import Deltas
from services.web.schemas import load_schema
from tests.fixtures.streams import RECEIVED, SCHEMAS, SHANGHAI, samples, schema_validator

# The form event_keys.event_type accepts (migration 0005) and a Prometheus label value can hold.
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
ENDPOINT = re.compile(r"[a-z][a-z0-9-]*")

streams = pytest.mark.parametrize("stream", list(STREAMS.values()), ids=list(STREAMS))


def _model_accepts(stream: Stream[Any], doc: Any) -> bool:
    return not stream.validate([doc])[1]


# (stream, field, the field it may not exceed): the upload's data-quality counts are at most its
# records (contract Revision 2), which the schema says only in prose.
AT_MOST: list[tuple[str, str, str]] = [
    ("upload", "incomplete_records", "record_count"),
    ("upload", "nonconforming_records", "record_count"),
    ("upload", "unlinked_records", "record_count"),
]


def _beyond_schema(stream: Stream[Any], doc: dict[str, Any]) -> bool:
    def number(value: Any) -> bool:  # a count each field accepts on its own (JSON's 1.0 is the integer 1)
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        return whole and not isinstance(value, bool) and 0 <= value <= 10_000_000

    return any(
        name == stream.name and number(doc.get(small, 0)) and number(doc.get(big)) and doc.get(small, 0) > doc[big]
        for name, small, big in AT_MOST
    )


# Values every field is tried with: wrong types, bounds, and the other fields' valid forms.
PROBES: list[Any] = [
    None,
    True,
    0,
    -1,
    1.0,
    1.5,
    10_000_000,
    10_000_001,
    "",
    "a" * 65,
    "a" * 129,
    "has space",
    "ok.id:with-chars_1",
    "2020-04-01",
    "2020-4-1",
    "2020-04-01T10:00:00",
    "2020-04-01T10:00:00+08:00",
    "2020-04-01 10:00:00+08:00",
    1585706400,
    "12.50",
    "12.505",
    "-1.00",
    "1e3",
    "NaN",
    12.5,
    [],
    {},
]


def _consumed(events: list[Any]) -> list[ConsumedEvent[Any]]:
    return [ConsumedEvent(e, RECEIVED + timedelta(seconds=n % 7), n % 3, n) for n, e in enumerate(events)]


def _fold(stream: Stream[Any], events: list[ConsumedEvent[Any]]) -> Deltas:
    deltas = Deltas()
    stream.fold(events, SHANGHAI, deltas)
    return deltas


# --- the registry ------------------------------------------------------------------------


def test_registry_order_is_the_explicit_tuple() -> None:
    assert list(STREAMS) == ["upload", "kiosk", "appointment", "hotline_contact", "remote_upload"]
    assert [s.path for s in STREAMS.values()] == [
        "/v1/uploads",
        "/v1/kiosk-transactions",
        "/v1/appointments",
        "/v1/hotline-contacts",
        "/v1/remote-uploads",
    ]


@pytest.mark.parametrize(
    "clash",
    [
        {"name": "upload"},
        {"endpoint": "uploads"},
        {"schema": "upload-event.schema.json"},
        {"batch_schema": "upload-batch.schema.json"},
        {"raw": STREAMS["upload"].raw},
        {"rollups": (STREAMS["upload"].rollups[-1],)},
    ],
    ids=lambda clash: next(iter(clash)),
)
def test_registry_refuses_a_second_claim(clash: dict[str, Any]) -> None:
    kiosk = STREAMS["kiosk"]
    with pytest.raises(DuplicateStreamError):
        registry(STREAMS["upload"], dataclasses.replace(kiosk, **clash))
    # The same stream without the clash is fine.
    assert list(registry(STREAMS["upload"], kiosk)) == ["upload", "kiosk"]


def test_registry_refuses_the_same_model_twice() -> None:
    with pytest.raises(DuplicateStreamError, match="model"):
        registry(
            STREAMS["upload"],
            dataclasses.replace(
                STREAMS["upload"],
                name="u2",
                endpoint="u2",
                raw=STREAMS["kiosk"].raw,
                schema="a",
                batch_schema="b",
                rollups=(),
            ),
        )


# --- each stream ------------------------------------------------------------------------


@streams
def test_names_fit_the_database_the_topic_and_the_routes(stream: Stream[Any]) -> None:
    assert NAME.fullmatch(stream.name)
    assert ENDPOINT.fullmatch(stream.endpoint)
    assert stream.path == f"/v1/{stream.endpoint}"
    assert STREAMS[stream.name] is stream
    assert STREAMS.by_path[stream.path] is stream and INGEST_PATHS[stream.path] is stream


@streams
def test_model_is_a_contract_event_with_id_and_institution_first(stream: Stream[Any]) -> None:
    assert issubclass(stream.model, ContractEvent)
    assert list(stream.model.model_fields)[:2] == ["event_id", "org_code"]
    assert stream.model.model_config.get("extra") == "forbid" and stream.model.model_config.get("frozen")


@streams
def test_schema_files_exist_and_name_the_models_fields(stream: Stream[Any]) -> None:
    event = json.loads((SCHEMAS / stream.schema).read_text("utf-8"))
    batch = json.loads((SCHEMAS / stream.batch_schema).read_text("utf-8"))
    assert event["$id"].endswith("/" + stream.schema) and batch["$id"].endswith("/" + stream.batch_schema)
    assert stream.path in event["title"] and stream.path in batch["title"]
    fields = stream.model.model_fields
    assert list(event["properties"]) == list(fields)
    assert set(event["required"]) == {name for name, info in fields.items() if info.is_required()}
    assert event["additionalProperties"] is False
    assert stream.schema in json.dumps(batch)


@streams
def test_schema_and_model_agree_on_the_example_and_its_mutations(stream: Stream[Any]) -> None:
    schema = schema_validator(stream.schema)
    example = dict(stream.example)
    assert schema.is_valid(example) and _model_accepts(stream, example)
    docs: list[dict[str, Any]] = [{**example, "unknown": 1}]
    docs += [{k: v for k, v in example.items() if k != name} for name in stream.model.model_fields]
    docs += [{**example, name: probe} for name in stream.model.model_fields for probe in PROBES]
    # Rules across fields that JSON Schema cannot state: the model alone refuses these documents.
    beyond = [doc for doc in docs if _beyond_schema(stream, doc)]
    assert all(schema.is_valid(doc) and not _model_accepts(stream, doc) for doc in beyond)
    disagree = [doc for doc in docs if doc not in beyond and schema.is_valid(doc) != _model_accepts(stream, doc)]
    assert disagree == []
    # The probes must reach both answers, or the agreement says little.
    assert {schema.is_valid(doc) for doc in docs} == {True, False}


@streams
def test_generated_samples_are_valid_for_the_schema_too(stream: Stream[Any]) -> None:
    events = samples(stream)
    assert len(events) >= 200
    schema = schema_validator(stream.schema)
    wire = [e.model_dump(mode="json", exclude_unset=True) for e in events]
    assert all(schema.is_valid(doc) for doc in wire)
    batch = schema_validator(stream.batch_schema)
    assert batch.is_valid({"events": wire[:1000]}) and batch.is_valid(wire[0])


@streams
def test_moment_is_an_aware_timestamp_of_the_event(stream: Stream[Any]) -> None:
    event = stream.model.model_validate(stream.example)
    moment = stream.moment(event)
    assert isinstance(moment, datetime) and moment.tzinfo is not None
    assert moment in [getattr(event, name) for name in stream.model.model_fields]


@streams
def test_raw_columns_are_the_models_fields_then_the_origin(stream: Stream[Any]) -> None:
    columns = stream.raw.columns
    assert columns[-len(ORIGIN_COLUMNS) :] == ORIGIN_COLUMNS
    assert sorted(columns[: -len(ORIGIN_COLUMNS)]) == sorted(stream.model.model_fields)
    assert len(set(columns)) == len(columns)


@streams
def test_copy_lines_hold_one_clean_field_per_column_and_rows_give_the_events_back(stream: Stream[Any]) -> None:
    events = _consumed(samples(stream))
    text = copy_text(stream, events).decode()
    lines = text.split("\n")
    assert lines.pop() == "" and len(lines) == len(events)
    for line, consumed in zip(lines, events, strict=True):
        fields = line.split("\t")
        assert len(fields) == len(stream.raw.columns)
        assert not any(COPY_SPECIAL & set(value) for value in fields)
        row = dict(zip(stream.raw.columns, fields, strict=True))
        assert (row["kafka_partition"], row["kafka_offset"]) == (str(consumed.partition), str(consumed.offset))
        assert datetime.fromisoformat(row["received_at"]) == consumed.received_at
        # What the database gives back for these columns is the event's own values.
        stored = {name: getattr(consumed.event, name) for name in stream.model.model_fields}
        assert stream.raw.event_of_row(stored) == consumed.event


@streams
def test_fold_writes_only_its_declared_tables_with_their_shape(stream: Stream[Any]) -> None:
    deltas = _fold(stream, _consumed(samples(stream)))
    declared = {table.name: table for table in stream.rollups}
    assert deltas.tables and set(deltas.tables) <= set(declared)
    for name, rows in deltas.tables.items():
        table = declared[name]
        for key, values in rows.items():
            assert len(key) == len(table.keys) and None not in key
            assert len(values) == len(table.values) and None not in values
        assert len(table.columns(rows)) == len(table.keys) + len(table.values)


@streams
def test_fold_is_deterministic_order_free_and_additive(stream: Stream[Any]) -> None:
    events = _consumed(samples(stream))
    frozen = [e.event.model_dump() for e in events]
    whole = _fold(stream, events).tables
    assert _fold(stream, events).tables == whole
    shuffled = list(events)
    random.Random(3).shuffle(shuffled)
    assert _fold(stream, shuffled).tables == whole
    # Two batches folded apart and merged by the tables' rules (as the upserts merge them) = one batch.
    halves = Deltas()
    for part in (events[: len(events) // 3], events[len(events) // 3 :]):
        halves.add(_fold(stream, part), stream.rollups)
    assert halves.tables == whole
    # Folding into deltas that already hold rows adds to them (rebuild folds chunk by chunk).
    again = _fold(stream, events[:10])
    stream.fold(events[10:], SHANGHAI, again)
    assert again.tables == whole
    assert [e.event.model_dump() for e in events] == frozen


@streams
def test_the_month_of_an_event_follows_the_platform_zone(stream: Stream[Any]) -> None:
    # The same events folded in another zone land in other rollup rows somewhere.
    events = _consumed(samples(stream))
    other = Deltas()
    stream.fold(events, ZoneInfo("America/New_York"), other)
    assert other.tables != _fold(stream, events).tables


@streams
def test_records_decode_to_the_streams_events_and_dead_letters_carry_its_name(stream: Stream[Any]) -> None:
    raws = [dict(stream.example, event_id=f"e{n}") for n in range(3)]
    bad = {**stream.example, "event_id": "not an id"}
    [record] = encode_records(stream.name, [raws[0], bad, raws[1], raws[2]], RECEIVED)
    consumer_record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        "t", 1, 5, 0, 0, record.key, record.value, None, 1, len(record.value), []
    )
    events: list[ConsumedEvent[Any]] = []
    dead: list[DeadLetter] = []
    decode_into(consumer_record, events, dead)
    assert [c.event for c in events] == [stream.model.model_validate(r) for r in raws]
    assert [(error.reason, error.event_type, raw) for _, error, raw in dead] == [("invalid_event", stream.name, bad)]
    assert list(first_of_each_key(events)) == [stream.name]
    error, raw = unstorable(events[0], ValueError("refused"))
    assert (error.reason, error.event_type) == ("unstorable", stream.name)
    assert stream.model.model_validate(raw) == events[0].event


@streams
def test_the_collector_documents_and_routes_the_endpoint(stream: Stream[Any]) -> None:
    app = create_app(CollectorSettings(admin_token="a-unit-test-admin-token-0123456789"), CollectorRegistry())
    post = app.openapi()["paths"][stream.path]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == load_schema(stream.batch_schema)
    assert post["summary"] == stream.summary and post["tags"] == ["ingest"]
    assert {"202", "400", "401", "403", "413", "415", "422", "429", "503"} <= set(post["responses"])


def test_samples_cover_what_the_folds_distinguish() -> None:
    # The property tests above prove little if the samples do not vary: both enums' values,
    # zero and non-zero counts, several months.
    for stream in STREAMS.values():
        wire = [orjson.loads(orjson.dumps(e.model_dump(mode="json"))) for e in samples(stream)]
        for name in stream.model.model_fields:
            if name != "event_id":
                assert len({json.dumps(doc.get(name)) for doc in wire}) > 1, f"{stream.name}.{name} never varies"
        months = {stream.moment(e).astimezone(SHANGHAI).strftime("%Y-%m") for e in samples(stream)}
        assert len(months) >= 2
