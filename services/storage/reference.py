"""Reference data: load a set (CSV folder or JSON), check it, and replace the current version."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from services.contract.models import ReferenceSet
from services.storage.connection import Connection
from services.storage.errors import ReferenceDataError

REFERENCE_CHANNEL = "telemetry_reference"
_FILES = ("institutions", "tables", "declarations", "kiosks")


def read_reference_folder(folder: Path) -> ReferenceSet:
    """Read the four CSV files of a reference folder into the contract model."""
    body: dict[str, list[dict[str, Any]]] = {}
    problems = []
    for name in _FILES:
        path = folder / f"{name}.csv"
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        with path.open(encoding="utf-8-sig", newline="") as handle:
            body[name] = [dict(row) for row in csv.DictReader(handle)]
    if problems:
        raise ReferenceDataError(problems)
    return parse_reference(body)


def parse_reference(body: Any) -> ReferenceSet:
    """Validate a reference body against the contract, as ReferenceDataError with every problem."""
    try:
        return ReferenceSet.model_validate(body)
    except ValidationError as exc:
        raise ReferenceDataError(
            [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)]
        ) from exc


def check_consistency(ref: ReferenceSet) -> list[str]:
    """Every problem that would leave a dangling or duplicate reference."""
    problems: list[str] = []

    def dupes(kind: str, keys: list[Any]) -> None:
        seen: set[Any] = set()
        for key in keys:
            if key in seen:
                problems.append(f"{kind}: duplicate {key}")
            seen.add(key)

    orgs = {i.org_code for i in ref.institutions}
    tables = {t.table_code for t in ref.tables}
    dupes("institutions", [i.org_code for i in ref.institutions])
    dupes("tables", [t.table_code for t in ref.tables])
    dupes("declarations", [(d.org_code, d.table_code) for d in ref.declarations])
    dupes("kiosks", [k.kiosk_id for k in ref.kiosks])
    for n, d in enumerate(ref.declarations):
        if d.org_code not in orgs:
            problems.append(f"declarations[{n}]: unknown institution {d.org_code}")
        if d.table_code not in tables:
            problems.append(f"declarations[{n}]: unknown table {d.table_code}")
    for n, k in enumerate(ref.kiosks):
        if k.org_code not in orgs:
            problems.append(f"kiosks[{n}]: unknown institution {k.org_code}")
    return problems


def checksum(ref: ReferenceSet) -> str:
    """Order-independent digest of a reference set, so reloading the same set is a no-op."""
    canonical = {
        "institutions": sorted((i.org_code, i.name, i.kind.value) for i in ref.institutions),
        "tables": sorted((t.table_code, t.name, t.category.value, t.required_for.value) for t in ref.tables),
        "declarations": sorted((d.org_code, d.table_code) for d in ref.declarations),
        "kiosks": sorted((k.kiosk_id, k.org_code) for k in ref.kiosks),
    }
    return hashlib.sha256(orjson.dumps(canonical)).hexdigest()


@dataclass(frozen=True)
class LoadResult:
    """Outcome of a reference load."""

    version: int
    created: bool
    institutions: int
    tables: int
    declarations: int
    kiosks: int

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the admin endpoint and the command line."""
        return {
            "version": self.version,
            "created": self.created,
            "institutions": self.institutions,
            "tables": self.tables,
            "declarations": self.declarations,
            "kiosks": self.kiosks,
        }


async def replace_reference(conn: Connection, ref: ReferenceSet, source: str) -> LoadResult:
    """Make `ref` the reference set in force, atomically; the same set twice is one version."""
    problems = check_consistency(ref)
    if problems:
        raise ReferenceDataError(problems)
    digest = checksum(ref)
    counts = (len(ref.institutions), len(ref.tables), len(ref.declarations), len(ref.kiosks))
    async with conn.transaction():
        # Serialise concurrent loads: the second sees the first's version and its checksum.
        await conn.execute("LOCK TABLE reference_current IN EXCLUSIVE MODE")
        current = await conn.fetchrow(
            "SELECT v.version, v.checksum FROM reference_current c JOIN reference_versions v USING (version)"
        )
        if current is not None and current["checksum"] == digest:
            return LoadResult(current["version"], False, *counts)
        version: int = await conn.fetchval(
            """INSERT INTO reference_versions (checksum, source, institutions, tables, declarations, kiosks)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING version""",
            digest,
            source,
            *counts,
        )
        await conn.copy_records_to_table(
            "ref_institutions",
            columns=["version", "org_code", "name", "kind"],
            records=[(version, i.org_code, i.name, i.kind.value) for i in ref.institutions],
        )
        await conn.copy_records_to_table(
            "ref_tables",
            columns=["version", "table_code", "name", "category", "required_for"],
            records=[(version, t.table_code, t.name, t.category.value, t.required_for.value) for t in ref.tables],
        )
        await conn.copy_records_to_table(
            "ref_declarations",
            columns=["version", "org_code", "table_code"],
            records=[(version, d.org_code, d.table_code) for d in ref.declarations],
        )
        await conn.copy_records_to_table(
            "ref_kiosks",
            columns=["version", "kiosk_id", "org_code"],
            records=[(version, k.kiosk_id, k.org_code) for k in ref.kiosks],
        )
        await conn.execute(
            """INSERT INTO reference_current (singleton, version) VALUES (true, $1)
               ON CONFLICT (singleton) DO UPDATE SET version = excluded.version""",
            version,
        )
        await conn.execute("SELECT pg_notify($1, $2)", REFERENCE_CHANNEL, str(version))
    return LoadResult(version, True, *counts)


@dataclass(frozen=True)
class ReferenceSnapshot:
    """What ingest checks against: known institutions, tables and each kiosk's institution."""

    version: int | None
    institutions: frozenset[str]
    tables: frozenset[str]
    kiosk_org: dict[str, str]

    @classmethod
    def empty(cls) -> ReferenceSnapshot:
        """Before any reference data is loaded: nothing is known."""
        return cls(None, frozenset(), frozenset(), {})


async def load_snapshot(conn: Connection) -> ReferenceSnapshot:
    """Read the reference set in force."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        version = await conn.fetchval("SELECT version FROM reference_current")
        orgs = await conn.fetch("SELECT org_code FROM cur_institutions")
        tables = await conn.fetch("SELECT table_code FROM cur_tables")
        kiosks = await conn.fetch("SELECT kiosk_id, org_code FROM cur_kiosks")
    return ReferenceSnapshot(
        version,
        frozenset(r["org_code"] for r in orgs),
        frozenset(r["table_code"] for r in tables),
        {r["kiosk_id"]: r["org_code"] for r in kiosks},
    )
