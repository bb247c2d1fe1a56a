"""Input files as events of one stream: JSON lines or CSV, the stream named or told from the fields.

JSON lines are the wire format already: each line is one event object and is sent byte for
byte as written (so an amount stays the exact text it was). A line that is not one JSON
object (invalid JSON, duplicate keys, an array) is refused here, with its line number, so it
cannot sink the batch it would have been sent in.

CSV has a header row of field names; a nested field is a dotted column (`counts.reports`) or
one column holding a JSON object (`counts`). Empty cells are absent fields, and a row of
empty cells is skipped. Cells are typed by the stream's JSON Schema (`schemas/`): an integer
field's cell that is an integer becomes a JSON integer, every other cell stays the text it
is, so amounts are never floats and a cell that is not what the contract wants is sent as
written and refused by the collector with the contract's own reason.

The stream of a file is told from its fields, when exactly one stream fits: a CSV's header,
or the first JSON line that is an object, must name only fields of the stream's schema and
every field it requires.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from services.contract.validation import UnreadableJsonError, decode_json
from services.send.errors import SourceError
from services.send.records import UNREADABLE, Problem, Refused, SourceEvent
from services.streams import Stream
from services.web.schemas import load_schema

Item = SourceEvent | Refused
_INTEGER = re.compile(r"[+-]?[0-9]+")
_BOM = b"\xef\xbb\xbf"


class Format(StrEnum):
    """How a file is written."""

    JSONL = "jsonl"
    CSV = "csv"


_SUFFIXES = {".csv": Format.CSV, ".jsonl": Format.JSONL, ".ndjson": Format.JSONL, ".json": Format.JSONL}


def format_of(path: Path, given: Format | None = None) -> Format:
    """`given`, else the format the file's suffix says (`.csv`; `.jsonl`, `.ndjson`, `.json`)."""
    if given is not None:
        return given
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise SourceError(f"{path}: cannot tell the format from the suffix {path.suffix!r}; give --format csv or jsonl")
    return found


def stream_named(name: str, streams: Mapping[str, Stream[Any]]) -> Stream[Any]:
    """The stream called `name`, by its name (`upload`) or its endpoint (`uploads`)."""
    for stream in streams.values():
        if name in (stream.name, stream.endpoint):
            return stream
    known = ", ".join(f"{s.name} ({s.endpoint})" for s in streams.values())
    raise SourceError(f"no stream {name!r}; the streams are {known}")


@dataclass(frozen=True, slots=True)
class Fields:
    """The fields a stream's schema allows, and those it requires."""

    allowed: frozenset[str]
    required: frozenset[str]


@cache
def _schema(stream_schema: str) -> dict[str, Any]:
    return load_schema(stream_schema)


def fields_of(stream: Stream[Any]) -> Fields:
    """A stream's top-level fields, from its JSON Schema (the contract)."""
    schema = _schema(stream.schema)
    return Fields(frozenset(schema.get("properties", {})), frozenset(schema.get("required", ())))


def infer_stream(fields: Collection[str], streams: Mapping[str, Stream[Any]], where: str) -> Stream[Any]:
    """The one stream whose schema allows every one of `fields` and has all it requires among them."""
    named = set(fields)
    fits = [s for s in streams.values() if named <= (f := fields_of(s)).allowed and f.required <= named]
    if len(fits) == 1:
        return fits[0]
    shown = ", ".join(sorted(named)) or "none"
    if not fits:
        raise SourceError(f"{where}: no stream has exactly the fields {shown}; give --stream")
    raise SourceError(f"{where}: the fields {shown} fit {', '.join(s.name for s in fits)}; give --stream")


# ---- JSON lines


def _strip(line: bytes, number: int) -> bytes:
    line = line.strip()
    return line.removeprefix(_BOM).strip() if number == 1 else line


def _read_object(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """The JSON object of a line, or None and why not."""
    try:
        doc = decode_json(line)
    except UnreadableJsonError as exc:
        why = str(exc)
        return None, "line " + why.removeprefix("body ") if why.startswith("body ") else why
    if not isinstance(doc, dict):
        return None, "a line must be one JSON object (one event)"
    return doc, ""


def jsonl_items(lines: Iterable[bytes]) -> Iterator[Item]:
    """The events of JSON lines (blank lines skipped), or a refusal for each line that is not one object."""
    for number, raw in enumerate(lines, start=1):
        line = _strip(raw, number)
        if not line:
            continue
        doc, why = _read_object(line)
        if doc is None:
            text = line.decode("utf-8", errors="replace")
            yield Refused(number, None, UNREADABLE, (Problem("(line)", why),), text=text)
        else:
            yield SourceEvent(number, line)


def jsonl_fields(lines: Iterable[bytes]) -> list[str] | None:
    """The field names of the first line that is a JSON object (None if no line is)."""
    for number, raw in enumerate(lines, start=1):
        line = _strip(raw, number)
        doc, _ = _read_object(line) if line else (None, "")
        if doc is not None:
            return list(doc)
    return None


# ---- CSV

Coerce = Callable[[str], Any]


def _as_integer(cell: str) -> Any:
    text = cell.strip()
    return int(text) if _INTEGER.fullmatch(text) else cell


def _as_object(cell: str) -> Any:
    try:
        doc = decode_json(cell.encode())
    except UnreadableJsonError:
        return cell
    return doc if isinstance(doc, dict) else cell


def _as_text(cell: str) -> Any:
    return cell


def _node(schema: Mapping[str, Any], path: Sequence[str]) -> Mapping[str, Any] | None:
    node: Mapping[str, Any] = schema
    for part in path:
        properties = node.get("properties", {})
        extra = node.get("additionalProperties")
        if part in properties:
            node = properties[part]
        elif isinstance(extra, dict):
            node = extra
        else:
            return None
    return node


def _coercion(node: Mapping[str, Any] | None) -> Coerce:
    kind = node.get("type") if node is not None else None
    kinds = set(kind) if isinstance(kind, list) else {kind}
    if "integer" in kinds:
        return _as_integer
    if "object" in kinds:
        return _as_object
    return _as_text


@dataclass(frozen=True, slots=True)
class Column:
    """A CSV column: where its cell goes in the event, and how the cell is typed."""

    path: tuple[str, ...]
    coerce: Coerce


def csv_columns(header: Sequence[str], schema: Mapping[str, Any], where: str) -> list[Column]:
    """The columns of a header, typed by `schema`; refuses empty, repeated or overlapping names."""
    paths = [tuple(name.strip().split(".")) for name in header]
    for index, path in enumerate(paths, start=1):
        if not all(path):
            raise SourceError(f"{where}: header column {index} {header[index - 1]!r} is not a field name")
    seen = set(paths)
    if len(seen) < len(paths):
        twice = sorted({".".join(p) for p in paths if paths.count(p) > 1})
        raise SourceError(f"{where}: the header names {', '.join(twice)} more than once")
    for path in paths:
        for cut in range(1, len(path)):
            if path[:cut] in seen:
                raise SourceError(f"{where}: the header has both {'.'.join(path[:cut])} and {'.'.join(path)}")
    return [Column(path, _coercion(_node(schema, path))) for path in paths]


def csv_event(columns: Sequence[Column], cells: Sequence[str]) -> dict[str, Any]:
    """The event of one row: empty cells absent, dotted columns nested, cells typed."""
    event: dict[str, Any] = {}
    for column, cell in zip(columns, cells, strict=False):
        if cell == "":
            continue
        target = event
        for part in column.path[:-1]:
            target = target.setdefault(part, {})
        target[column.path[-1]] = column.coerce(cell)
    return event


def csv_items(rows: Iterable[tuple[int, list[str]]], columns: Sequence[Column]) -> Iterator[Item]:
    """The events of CSV rows, given as (line where the row starts, cells) after the header."""
    for line, cells in rows:
        if not any(cells):
            continue
        if len(cells) > len(columns):
            why = f"the row has {len(cells)} cells and the header {len(columns)}"
            yield Refused(line, None, UNREADABLE, (Problem("(row)", why),), text=",".join(cells))
            continue
        yield SourceEvent(line, orjson.dumps(csv_event(columns, cells)))


def csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """(line where the row starts, cells) of every row, the header included; a quoted cell may span lines."""
    reader = csv.reader(lines, strict=True)
    last = 0
    for cells in reader:
        yield last + 1, cells
        last = reader.line_num


def csv_header(rows: Iterator[tuple[int, list[str]]]) -> list[str] | None:
    """The first row that is not empty (None if there is none); `rows` goes on after it."""
    return next((cells for _, cells in rows if any(cells)), None)


# ---- a file


@dataclass(frozen=True)
class Source:
    """One input file: its format and the stream its events are posted to."""

    path: Path
    format: Format
    stream: Stream[Any]

    @property
    def refused_path(self) -> Path:
        """Where the refused events are written: beside the file, `FILE.refused.jsonl`."""
        return self.path.with_name(self.path.name + ".refused.jsonl")

    def items(self) -> Iterator[Item]:
        """The file's events (and refusals of what is not one), in file order; SourceError if it
        cannot be read on (a CSV quote never closed, text that is not UTF-8)."""
        try:
            yield from self._items()
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise SourceError(f"{self.path}: cannot be read on: {exc}") from exc

    def _items(self) -> Iterator[Item]:
        if self.format is Format.JSONL:
            with self.path.open("rb") as lines:
                yield from jsonl_items(lines)
            return
        with self.path.open(encoding="utf-8-sig", newline="") as text:
            rows = csv_rows(text)
            header = csv_header(rows)
            if header is None:
                return
            columns = csv_columns(header, _schema(self.stream.schema), str(self.path))
            yield from csv_items(rows, columns)

    def count_lines(self) -> int:
        """Lines of the file (an upper bound of its events, for the progress bar)."""
        count = 0
        with self.path.open("rb") as data:
            while chunk := data.read(1 << 20):
                count += chunk.count(b"\n")
        return count


def open_source(path: Path, streams: Mapping[str, Stream[Any]], stream: str | None, fmt: Format | None) -> Source:
    """The file at `path` as a `Source`: the stream named, or the one its fields fit; a CSV's header
    checked. SourceError for anything that would stop the file before its first event."""
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    found = format_of(path, fmt)
    try:
        fields = _fields_in(path, found)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{path}: cannot be read: {exc}") from exc
    if stream is not None:
        chosen = stream_named(stream, streams)
    elif fields is None:
        raise SourceError(f"{path}: no event to tell the stream from; give --stream")
    else:
        chosen = infer_stream([name.split(".")[0] for name in fields], streams, str(path))
    if found is Format.CSV and fields is not None:
        csv_columns(fields, _schema(chosen.schema), str(path))
    return Source(path, found, chosen)


def _fields_in(path: Path, fmt: Format) -> list[str] | None:
    """A CSV's header, or the fields of the first JSON line that is an object."""
    if fmt is Format.JSONL:
        with path.open("rb") as lines:
            return jsonl_fields(lines)
    with path.open(encoding="utf-8-sig", newline="") as text:
        header = csv_header(csv_rows(text))
    return [name.strip() for name in header] if header else None
