"""`telemetry send`'s reading of files: JSON lines kept as written, CSV cells typed by the schema, the stream told."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.send.errors import SourceError
from services.send.files import (
    Format,
    csv_columns,
    csv_header,
    csv_items,
    csv_rows,
    format_of,
    infer_stream,
    jsonl_items,
    open_source,
)
from services.send.records import Refused, SourceEvent
from services.streams import STREAMS
from services.web.schemas import load_schema

UPLOAD_SCHEMA = load_schema("upload-event.schema.json")
REMOTE_SCHEMA = load_schema("remote-upload.schema.json")


def _csv(text: str, schema: dict[str, Any]) -> list[SourceEvent | Refused]:
    rows = csv_rows(text.splitlines(keepends=True))
    header = csv_header(rows)
    assert header is not None
    return list(csv_items(rows, csv_columns(header, schema, "test.csv")))


def _event(item: SourceEvent | Refused) -> dict[str, Any]:
    assert isinstance(item, SourceEvent), item
    doc: dict[str, Any] = orjson.loads(item.body)
    return doc


def test_json_lines_are_sent_byte_for_byte_and_bad_lines_refused_with_their_number() -> None:
    lines = [
        '\ufeff{"event_id": "k1", "amount": "12.50"}\n'.encode(),
        b"\n",
        b'{"event_id": "k2", "amount": 12.50}\r\n',
        b"not json\n",
        b"[1, 2]\n",
        b'{"event_id": "k3", "event_id": "k4"}\n',
        b"   \n",
        b'{"event_id": "k5"}',
    ]
    items = list(jsonl_items(lines))
    assert [(type(i).__name__, i.line) for i in items] == [
        ("SourceEvent", 1),
        ("SourceEvent", 3),
        ("Refused", 4),
        ("Refused", 5),
        ("Refused", 6),
        ("SourceEvent", 8),
    ]
    first, second = items[0], items[1]
    assert isinstance(first, SourceEvent) and isinstance(second, SourceEvent)
    # The BOM and line ends go; the rest is the file's own bytes (an amount's text stays as written).
    assert first.body == b'{"event_id": "k1", "amount": "12.50"}'
    assert second.body == b'{"event_id": "k2", "amount": 12.50}'
    refused = [i for i in items if isinstance(i, Refused)]
    assert all(r.status is None and r.error == "unreadable" and r.event is None for r in refused)
    assert refused[0].text == "not json" and "not valid JSON" in refused[0].problems[0].reason
    assert "one JSON object" in refused[1].problems[0].reason
    assert "duplicate key 'event_id'" in refused[2].problems[0].reason


def test_csv_cells_are_typed_by_the_schema_and_empty_cells_are_absent() -> None:
    text = (
        "event_id,org_code,table_code,mode,business_date,uploaded_at,record_count,document_count\n"
        "u1,D1,OPV,realtime,2020-04-01,2020-04-01T10:00:00+08:00,42,\n"
        "u2,D1,OPV,scheduled,2020-04-02,2020-04-02T10:00:00+08:00, 7 ,3\n"
        ",,,,,,,\n"
        "u3,D1,OPV,realtime,2020-04-03,2020-04-03T10:00:00+08:00,12.5,x\n"
    )
    items = _csv(text, UPLOAD_SCHEMA)
    assert [i.line for i in items] == [2, 3, 5]
    assert _event(items[0]) == {
        "event_id": "u1",
        "org_code": "D1",
        "table_code": "OPV",
        "mode": "realtime",
        "business_date": "2020-04-01",
        "uploaded_at": "2020-04-01T10:00:00+08:00",
        "record_count": 42,
    }
    assert (_event(items[1])["record_count"], _event(items[1])["document_count"]) == (7, 3)
    # Not an integer: sent as written, for the collector to refuse with the contract's reason.
    assert (_event(items[2])["record_count"], _event(items[2])["document_count"]) == ("12.5", "x")


def test_csv_amounts_stay_decimal_text_never_floats() -> None:
    text = "event_id,org_code,kiosk_id,kind,amount,occurred_at\nk1,H1,K1,payment,0.10,2020-04-01T10:00:00+08:00\n"
    schema = load_schema("kiosk-transaction.schema.json")
    (item,) = _csv(text, schema)
    assert isinstance(item, SourceEvent)
    assert b'"amount":"0.10"' in item.body
    assert Decimal(_event(item)["amount"]) == Decimal("0.10")


def test_csv_nested_fields_by_dotted_columns_or_a_json_object() -> None:
    dotted = _csv(
        "event_id,org_code,platform,uploaded_at,counts.reports,counts.images\n"
        "r1,H1,imaging,2020-04-01T10:00:00+08:00,1,128\n"
        "r2,H1,imaging,2020-04-01T10:00:00+08:00,2,\n",
        REMOTE_SCHEMA,
    )
    assert _event(dotted[0])["counts"] == {"reports": 1, "images": 128}
    assert _event(dotted[1])["counts"] == {"reports": 2}
    whole = _csv(
        'event_id,org_code,platform,uploaded_at,counts\nr3,H1,lab,2020-04-01T10:00:00+08:00,"{""reports"": 5}"\n',
        REMOTE_SCHEMA,
    )
    assert _event(whole[0])["counts"] == {"reports": 5}


def test_csv_row_numbers_count_lines_of_quoted_cells_and_long_rows_are_refused() -> None:
    text = '\n,\nevent_id,org_code\n"a\nb",D1\nx,D1,extra\n\ny,D1\n'
    items = _csv(text, UPLOAD_SCHEMA)
    assert [(type(i).__name__, i.line) for i in items] == [
        ("SourceEvent", 4),
        ("Refused", 6),
        ("SourceEvent", 8),
    ]
    assert _event(items[0])["event_id"] == "a\nb"
    refused = items[1]
    assert isinstance(refused, Refused) and "3 cells" in refused.problems[0].reason


@pytest.mark.parametrize(
    ("header", "said"),
    [
        (["event_id", "event_id"], "more than once"),
        (["counts", "counts.reports"], "both counts and counts.reports"),
        (["event_id", ""], "not a field name"),
        (["counts.", "event_id"], "not a field name"),
    ],
)
def test_a_csv_header_that_cannot_be_an_event_is_refused(header: list[str], said: str) -> None:
    with pytest.raises(SourceError, match=said):
        csv_columns(header, REMOTE_SCHEMA, "f.csv")


@pytest.mark.parametrize("name", list(STREAMS))
def test_each_stream_is_told_from_the_fields_of_its_example(name: str) -> None:
    stream = STREAMS[name]
    assert infer_stream(list(stream.example), STREAMS, "f") is stream
    # Its required fields alone fit it too (optional fields left out).
    required = set(load_schema(stream.schema)["required"])
    assert infer_stream(required, STREAMS, "f") is stream


def test_fields_that_fit_no_stream_or_two_need_stream() -> None:
    with pytest.raises(SourceError, match="no stream has exactly the fields event_id, org_code; give --stream"):
        infer_stream(["event_id", "org_code"], STREAMS, "f")
    with pytest.raises(SourceError, match="no stream"):
        infer_stream([*STREAMS["upload"].example, "colour"], STREAMS, "f")
    twice = {"a": STREAMS["kiosk"], "b": STREAMS["kiosk"]}
    with pytest.raises(SourceError, match="fit kiosk, kiosk; give --stream"):
        infer_stream(list(STREAMS["kiosk"].example), twice, "f")


def test_format_from_the_suffix_or_given() -> None:
    assert format_of(Path("a.CSV")) is Format.CSV
    assert format_of(Path("a.ndjson")) is Format.JSONL
    assert format_of(Path("a.txt"), Format.CSV) is Format.CSV
    with pytest.raises(SourceError, match="--format"):
        format_of(Path("a.txt"))


def test_open_source_names_or_infers_the_stream(tmp_path: Path) -> None:
    remote = tmp_path / "remote.csv"
    remote.write_text("event_id,org_code,platform,uploaded_at,counts.reports\nr1,H1,lab,2020-04-01T00:00:00Z,1\n")
    assert open_source(remote, STREAMS, None, None).stream is STREAMS["remote_upload"]
    hotline = tmp_path / "calls.jsonl"
    hotline.write_text("oops\n" + orjson.dumps(STREAMS["hotline_contact"].example).decode() + "\n")
    source = open_source(hotline, STREAMS, None, None)
    assert (source.stream, source.format) == (STREAMS["hotline_contact"], Format.JSONL)
    assert source.refused_path == tmp_path / "calls.jsonl.refused.jsonl"
    assert open_source(hotline, STREAMS, "kiosk-transactions", None).stream is STREAMS["kiosk"]
    with pytest.raises(SourceError, match="no stream 'calls'"):
        open_source(hotline, STREAMS, "calls", None)
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "missing.csv", STREAMS, None, None)
    twice = tmp_path / "twice.csv"
    twice.write_text("event_id,event_id\n")
    with pytest.raises(SourceError, match="more than once"):
        open_source(twice, STREAMS, "upload", None)


@pytest.mark.parametrize(
    ("name", "stream"),
    [
        ("backfill-uploads-2020-03.csv", "upload"),
        ("backfill-kiosk-2020-03.jsonl", "kiosk"),
        ("backfill-remote-2020-03.csv", "remote_upload"),
    ],
)
def test_the_readmes_example_files_are_valid_events_of_their_stream(name: str, stream: str) -> None:
    source = open_source(Path(__file__).parents[2] / "docs" / "examples" / name, STREAMS, None, None)
    assert source.stream is STREAMS[stream]
    items = list(source.items())
    assert items and all(isinstance(i, SourceEvent) for i in items)
    events, problems = source.stream.validate([_event(i) for i in items])
    assert problems == [] and len(events) == len(items)
