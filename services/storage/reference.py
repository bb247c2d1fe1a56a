"""Reference data: load a set (CSV folder or JSON), check it, and replace the current version.

The pure rules (where a problem is, what is inconsistent, who is connected when) are in
`refdata.py`; this module reads, stores and snapshots.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from services.contract.models import (
    BalanceMetric,
    InstitutionKind,
    InstitutionLevel,
    ReferenceSet,
    Region,
    RemotePlatform,
)
from services.storage.connection import Connection
from services.storage.errors import ReferenceDataError
from services.storage.refdata import (
    Interval,
    Locator,
    OpeningBalance,
    balance_for,
    check_consistency,
    connected_at_month_end,
    csv_location,
    json_location,
)

REFERENCE_CHANNEL = "telemetry_reference"
_FILES = ("institutions", "tables", "declarations", "kiosks")
# Revision 2's files: a folder without them is a v1 set, and they are then empty.
_OPTIONAL_FILES = ("platform_connections", "booking_platforms", "opening_balances", "no_upload_days")
# Columns whose empty CSV cell means "unknown" (or "still connected"): left out, so the model's
# default applies. An empty cell of any other column stays "" and is refused by the model.
_OPTIONAL_COLUMNS: Mapping[str, frozenset[str]] = {
    "institutions": frozenset({"level", "region", "city", "district"}),
    "platform_connections": frozenset({"disconnected_on"}),
    "no_upload_days": frozenset({"reason"}),
}
# CSV cells are text; an integer column's cell of digits is the integer (a JSON body must send a
# number). Anything else stays text and the model names the problem.
_INTEGER_COLUMNS: Mapping[str, frozenset[str]] = {"opening_balances": frozenset({"value"})}
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,19}")


def read_reference_folder(folder: Path) -> ReferenceSet:
    """Read the CSV files of a reference folder into the contract model, checked for consistency.

    The four v1 files must be there; the files of revision 2 may be missing (empty). Problems
    name the file, its line and the column.
    """
    body: dict[str, list[dict[str | None, Any]]] = {}
    problems = []
    for name in (*_FILES, *_OPTIONAL_FILES):
        path = folder / f"{name}.csv"
        if not path.is_file():
            if name in _FILES:
                problems.append(f"{path}: missing")
            continue
        with path.open(encoding="utf-8-sig", newline="") as handle:
            body[name] = [_csv_row(name, row) for row in csv.DictReader(handle)]
    if problems:
        raise ReferenceDataError(problems)
    ref = parse_reference(body, csv_location)
    problems = check_consistency(ref, csv_location)
    if problems:
        raise ReferenceDataError(problems)
    return ref


def _csv_row(name: str, row: Mapping[str | None, str | None]) -> dict[str | None, Any]:
    optional = _OPTIONAL_COLUMNS.get(name, frozenset())
    integers = _INTEGER_COLUMNS.get(name, frozenset())
    out: dict[str | None, Any] = {}
    for column, value in row.items():
        if column in optional and value in ("", None):
            continue
        if column in integers and isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
            out[column] = int(value)
        else:
            out[column] = value
    return out


def parse_reference(body: Any, locate: Locator = json_location) -> ReferenceSet:
    """Validate a reference body against the contract, as ReferenceDataError with every problem."""
    try:
        return ReferenceSet.model_validate(body)
    except ValidationError as exc:
        raise ReferenceDataError([_located(e["loc"], e["msg"], locate) for e in exc.errors(include_url=False)]) from exc


def _located(loc: tuple[int | str, ...], message: str, locate: Locator) -> str:
    # pydantic's loc is (section, index, field, ...) for a row's problem.
    if len(loc) >= 2 and isinstance(loc[0], str) and isinstance(loc[1], int):
        rest = ".".join(str(p) for p in loc[2:])
        return f"{locate(loc[0], loc[1])}{' ' + rest if rest else ''}: {message}"
    return f"{'.'.join(str(p) for p in loc) or '(body)'}: {message}"


def checksum(ref: ReferenceSet) -> str:
    """Order-independent digest of a reference set, so reloading the same set is a no-op.

    A set with nothing of revision 2 digests as it did before revision 2, so reloading an
    unchanged v1 set after the upgrade is still no new version.
    """

    def institution(i: Any) -> tuple[Any, ...]:
        attributes = (i.level, i.region, i.city, i.district)
        base = (i.org_code, i.name, i.kind.value)
        if all(a is None for a in attributes):
            return base
        return (*base, *(a.value if isinstance(a, InstitutionLevel | Region) else a for a in attributes))

    canonical: dict[str, Any] = {
        "institutions": sorted(institution(i) for i in ref.institutions),
        "tables": sorted((t.table_code, t.name, t.category.value, t.required_for.value) for t in ref.tables),
        "declarations": sorted((d.org_code, d.table_code) for d in ref.declarations),
        "kiosks": sorted((k.kiosk_id, k.org_code) for k in ref.kiosks),
    }
    revision2: dict[str, list[Any]] = {
        "platform_connections": sorted(
            (
                c.platform.value,
                c.org_code,
                c.connected_on.isoformat(),
                c.disconnected_on.isoformat() if c.disconnected_on else "",
            )
            for c in ref.platform_connections
        ),
        "booking_platforms": sorted((b.platform_code, b.name) for b in ref.booking_platforms),
        "opening_balances": sorted((b.metric.value, b.as_of.isoformat(), b.value) for b in ref.opening_balances),
        "no_upload_days": sorted((d.date.isoformat(), d.reason) for d in ref.no_upload_days),
    }
    canonical.update({name: rows for name, rows in revision2.items() if rows})
    return hashlib.sha256(orjson.dumps(canonical)).hexdigest()


@dataclass(frozen=True)
class LoadResult:
    """Outcome of a reference load: the version in force and the rows of each part."""

    version: int
    created: bool
    institutions: int
    tables: int
    declarations: int
    kiosks: int
    platform_connections: int = 0
    booking_platforms: int = 0
    opening_balances: int = 0
    no_upload_days: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the admin endpoint and the command line."""
        return {
            "version": self.version,
            "created": self.created,
            "institutions": self.institutions,
            "tables": self.tables,
            "declarations": self.declarations,
            "kiosks": self.kiosks,
            "platform_connections": self.platform_connections,
            "booking_platforms": self.booking_platforms,
            "opening_balances": self.opening_balances,
            "no_upload_days": self.no_upload_days,
        }


async def replace_reference(conn: Connection, ref: ReferenceSet, source: str) -> LoadResult:
    """Make `ref` the reference set in force, atomically; the same set twice is one version."""
    problems = check_consistency(ref)
    if problems:
        raise ReferenceDataError(problems)
    digest = checksum(ref)
    counts = (
        len(ref.institutions),
        len(ref.tables),
        len(ref.declarations),
        len(ref.kiosks),
        len(ref.platform_connections),
        len(ref.booking_platforms),
        len(ref.opening_balances),
        len(ref.no_upload_days),
    )
    async with conn.transaction():
        # Serialise concurrent loads: the second sees the first's version and its checksum.
        await conn.execute("LOCK TABLE reference_current IN EXCLUSIVE MODE")
        current = await conn.fetchrow(
            "SELECT v.version, v.checksum FROM reference_current c JOIN reference_versions v USING (version)"
        )
        if current is not None and current["checksum"] == digest:
            return LoadResult(current["version"], False, *counts)
        version: int = await conn.fetchval(
            """INSERT INTO reference_versions (checksum, source, institutions, tables, declarations, kiosks,
                   platform_connections, booking_platforms, opening_balances, no_upload_days)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING version""",
            digest,
            source,
            *counts,
        )
        await _copy_rows(conn, version, ref)
        await conn.execute(
            """INSERT INTO reference_current (singleton, version) VALUES (true, $1)
               ON CONFLICT (singleton) DO UPDATE SET version = excluded.version""",
            version,
        )
        await conn.execute("SELECT pg_notify($1, $2)", REFERENCE_CHANNEL, str(version))
    return LoadResult(version, True, *counts)


async def _copy_rows(conn: Connection, version: int, ref: ReferenceSet) -> None:
    def text(value: InstitutionLevel | Region | None) -> str | None:
        return value.value if value is not None else None

    # (table, columns after `version`, rows): every part of the set, as one new version.
    parts: list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]] = [
        (
            "ref_institutions",
            ("org_code", "name", "kind", "level", "region", "city", "district"),
            [
                (i.org_code, i.name, i.kind.value, text(i.level), text(i.region), i.city, i.district)
                for i in ref.institutions
            ],
        ),
        (
            "ref_tables",
            ("table_code", "name", "category", "required_for"),
            [(t.table_code, t.name, t.category.value, t.required_for.value) for t in ref.tables],
        ),
        ("ref_declarations", ("org_code", "table_code"), [(d.org_code, d.table_code) for d in ref.declarations]),
        ("ref_kiosks", ("kiosk_id", "org_code"), [(k.kiosk_id, k.org_code) for k in ref.kiosks]),
        (
            "ref_platform_connections",
            ("platform", "org_code", "connected_on", "disconnected_on"),
            [(c.platform.value, c.org_code, c.connected_on, c.disconnected_on) for c in ref.platform_connections],
        ),
        (
            "ref_booking_platforms",
            ("platform_code", "name"),
            [(b.platform_code, b.name) for b in ref.booking_platforms],
        ),
        (
            "ref_opening_balances",
            ("metric", "as_of", "value"),
            [(b.metric.value, b.as_of, b.value) for b in ref.opening_balances],
        ),
        ("ref_no_upload_days", ("day", "reason"), [(d.date, d.reason) for d in ref.no_upload_days]),
    ]
    # In this order: the tables after ref_institutions refer to it.
    for table, columns, rows in parts:
        await conn.copy_records_to_table(
            table, columns=["version", *columns], records=[(version, *row) for row in rows]
        )


@dataclass(frozen=True, slots=True)
class InstitutionInfo:
    """What the streams of revision 2 check and group by; `region` has its default (city) applied."""

    kind: InstitutionKind
    level: InstitutionLevel | None = None
    region: Region = Region.CITY
    city: str | None = None
    district: str | None = None


@dataclass(frozen=True)
class ReferenceSnapshot:
    """What ingest checks against: the reference set in force, in memory.

    v1: known institutions, tables and each kiosk's institution. Revision 2: each
    institution's kind and attributes, the booking platform codes, the connections to the
    remote-medicine platforms, the opening balances and the days without expected uploads.
    """

    version: int | None
    institutions: frozenset[str]
    tables: frozenset[str]
    kiosk_org: dict[str, str]
    institution_info: Mapping[str, InstitutionInfo] = field(default_factory=dict)
    booking_platforms: frozenset[str] = frozenset()
    connections: Mapping[RemotePlatform, Mapping[str, tuple[Interval, ...]]] = field(default_factory=dict)
    """platform -> org_code -> its connection intervals, in time order."""
    opening_balances: Mapping[BalanceMetric, tuple[OpeningBalance, ...]] = field(default_factory=dict)
    """metric -> its balances, by `as_of`."""
    no_upload_days: frozenset[date] = frozenset()

    @classmethod
    def empty(cls) -> ReferenceSnapshot:
        """Before any reference data is loaded: nothing is known."""
        return cls(None, frozenset(), frozenset(), {})

    def kind_of(self, org_code: str) -> InstitutionKind | None:
        """The institution's kind, None if it is unknown."""
        info = self.institution_info.get(org_code)
        return info.kind if info is not None else None

    def is_connected(self, platform: RemotePlatform, org_code: str, day: date) -> bool:
        """Whether the institution was connected to the platform on `day` (platform time zone)."""
        return any(span.covers(day) for span in self.connections.get(platform, {}).get(org_code, ()))

    def connected_at_month_end(self, platform: RemotePlatform, month: date) -> frozenset[str]:
        """Institutions connected to the platform at the end of the month `month` falls in."""
        return connected_at_month_end(self.connections.get(platform, {}), month)

    def opening_balance(self, metric: BalanceMetric, month: date) -> OpeningBalance | None:
        """The balance a cumulative figure of `month` starts from (latest `as_of` <= month), if any."""
        return balance_for(self.opening_balances.get(metric, ()), month)


async def load_snapshot(conn: Connection) -> ReferenceSnapshot:
    """Read the reference set in force."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        version = await conn.fetchval("SELECT version FROM reference_current")
        orgs = await conn.fetch("SELECT org_code, kind, level, region, city, district FROM cur_institutions")
        tables = await conn.fetch("SELECT table_code FROM cur_tables")
        kiosks = await conn.fetch("SELECT kiosk_id, org_code FROM cur_kiosks")
        platforms = await conn.fetch("SELECT platform_code FROM cur_booking_platforms")
        connections = await conn.fetch(
            "SELECT platform, org_code, connected_on, disconnected_on FROM cur_platform_connections"
            " ORDER BY platform, org_code, connected_on"
        )
        balances = await conn.fetch("SELECT metric, as_of, value FROM cur_opening_balances ORDER BY metric, as_of")
        days = await conn.fetch("SELECT day FROM cur_no_upload_days")
    intervals: dict[RemotePlatform, dict[str, tuple[Interval, ...]]] = {}
    for row in connections:
        by_org = intervals.setdefault(RemotePlatform(row["platform"]), {})
        by_org[row["org_code"]] = (
            *by_org.get(row["org_code"], ()),
            Interval(row["connected_on"], row["disconnected_on"]),
        )
    opening: dict[BalanceMetric, tuple[OpeningBalance, ...]] = {}
    for row in balances:
        metric = BalanceMetric(row["metric"])
        opening[metric] = (*opening.get(metric, ()), OpeningBalance(row["as_of"], row["value"]))
    return ReferenceSnapshot(
        version,
        frozenset(r["org_code"] for r in orgs),
        frozenset(r["table_code"] for r in tables),
        {r["kiosk_id"]: r["org_code"] for r in kiosks},
        institution_info={
            r["org_code"]: InstitutionInfo(
                kind=InstitutionKind(r["kind"]),
                level=InstitutionLevel(r["level"]) if r["level"] else None,
                region=Region(r["region"]) if r["region"] else Region.CITY,
                city=r["city"],
                district=r["district"],
            )
            for r in orgs
        },
        booking_platforms=frozenset(r["platform_code"] for r in platforms),
        connections=intervals,
        opening_balances=opening,
        no_upload_days=frozenset(r["day"] for r in days),
    )
