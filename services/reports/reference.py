"""The reference data the reports need, read once per report in the report's snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from services.contract.models import InstitutionKind, RequiredFor, TableCategory
from services.storage.connection import Connection


@dataclass(frozen=True)
class Institution:
    """Reference data of one institution."""

    org_code: str
    name: str
    kind: InstitutionKind


@dataclass(frozen=True)
class ReferenceView:
    """The reference data the reports need."""

    institutions: list[Institution]
    table_category: Mapping[str, TableCategory]
    table_required_for: Mapping[str, RequiredFor]
    declarations: Mapping[str, frozenset[str]]
    kiosks: Mapping[str, int]
    no_upload_days: frozenset[date] = frozenset()
    """Days on which no upload is expected (platform maintenance, agreed holidays)."""

    def required_table_codes(self, kind: InstitutionKind) -> frozenset[str]:
        """The tables an institution of `kind` must upload (none of a hotline or other institution)."""
        if kind not in (InstitutionKind.DISTRICT, InstitutionKind.HOSPITAL):
            return frozenset()
        wanted = {RequiredFor.BOTH, RequiredFor(kind.value)}
        return frozenset(code for code, req in self.table_required_for.items() if req in wanted)

    def required_tables(self, kind: InstitutionKind) -> int:
        """How many tables an institution of `kind` must upload (none of a hotline or other institution)."""
        return len(self.required_table_codes(kind))

    def expected_tables(self, inst: Institution) -> frozenset[str]:
        """The tables expected of an institution each business day: its declared ones, its required
        ones when it has declared nothing (contract Revision 2, "Expected uploads and timeliness")."""
        return self.declarations.get(inst.org_code) or self.required_table_codes(inst.kind)


async def load_reference_view(conn: Connection, org_code: str | None = None) -> ReferenceView:
    """The reference set in force (only `org_code`'s institution when given)."""
    insts = await conn.fetch(
        "SELECT org_code, name, kind FROM cur_institutions WHERE $1::text IS NULL OR org_code = $1 ORDER BY org_code",
        org_code,
    )
    tables = await conn.fetch("SELECT table_code, category, required_for FROM cur_tables")
    decls = await conn.fetch("SELECT org_code, table_code FROM cur_declarations")
    kiosks = await conn.fetch("SELECT org_code, count(*) AS n FROM cur_kiosks GROUP BY org_code")
    quiet = await conn.fetch("SELECT day FROM cur_no_upload_days")
    declarations: dict[str, set[str]] = {}
    for row in decls:
        declarations.setdefault(row["org_code"], set()).add(row["table_code"])
    return ReferenceView(
        institutions=[Institution(r["org_code"], r["name"], InstitutionKind(r["kind"])) for r in insts],
        table_category={r["table_code"]: TableCategory(r["category"]) for r in tables},
        table_required_for={r["table_code"]: RequiredFor(r["required_for"]) for r in tables},
        declarations={org: frozenset(codes) for org, codes in declarations.items()},
        kiosks={r["org_code"]: r["n"] for r in kiosks},
        no_upload_days=frozenset(r["day"] for r in quiet),
    )
