"""Report queries: read the rollups for a month, then let `monthly` compute the rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

from pydantic import BaseModel

from services.aggregator.monthly import (
    EHR,
    Institution,
    KioskInputs,
    MonthInputs,
    ReferenceView,
    kiosk_report,
    upload_report,
)
from services.contract.models import (
    InstitutionKind,
    KioskReportRow,
    MissingUploadRow,
    RequiredFor,
    TableCategory,
    UploadReportRow,
)
from services.storage.connection import Connection


def next_month(month: date) -> date:
    """First day of the month after `month`."""
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


async def load_reference_view(conn: Connection, org_code: str | None = None) -> ReferenceView:
    """The reference set in force (only `org_code`'s institution when given)."""
    insts = await conn.fetch(
        "SELECT org_code, name, kind FROM cur_institutions WHERE $1::text IS NULL OR org_code = $1 ORDER BY org_code",
        org_code,
    )
    tables = await conn.fetch("SELECT table_code, category, required_for FROM cur_tables")
    decls = await conn.fetch("SELECT org_code, table_code FROM cur_declarations")
    kiosks = await conn.fetch("SELECT org_code, count(*) AS n FROM cur_kiosks GROUP BY org_code")
    declarations: dict[str, set[str]] = {}
    for row in decls:
        declarations.setdefault(row["org_code"], set()).add(row["table_code"])
    return ReferenceView(
        institutions=[Institution(r["org_code"], r["name"], InstitutionKind(r["kind"])) for r in insts],
        table_category={r["table_code"]: TableCategory(r["category"]) for r in tables},
        table_required_for={r["table_code"]: RequiredFor(r["required_for"]) for r in tables},
        declarations={org: frozenset(codes) for org, codes in declarations.items()},
        kiosks={r["org_code"]: r["n"] for r in kiosks},
    )


async def month_inputs(conn: Connection, month: date, ref: ReferenceView) -> dict[str, MonthInputs]:
    """Per-institution aggregates of `month` from the rollup tables."""
    end = next_month(month)
    out: dict[str, MonthInputs] = {}
    for row in await conn.fetch(
        "SELECT org_code, table_code, records, documents FROM upload_monthly_tables WHERE month = $1", month
    ):
        inputs = out.setdefault(row["org_code"], MonthInputs())
        inputs.records += row["records"]
        inputs.documents += row["documents"]
        if row["records"] > 0:
            inputs.uploaded_tables.add(row["table_code"])
        category = ref.table_category.get(row["table_code"], TableCategory.OTHER)
        inputs.category_records[category] = inputs.category_records.get(category, 0) + row["records"]
    for row in await conn.fetch(
        """SELECT org_code, count(*) FILTER (WHERE records > 0) AS days FROM upload_daily
           WHERE day >= $1 AND day < $2 GROUP BY org_code""",
        month,
        end,
    ):
        out.setdefault(row["org_code"], MonthInputs()).upload_days = row["days"]
    ehr_tables = [code for code, cat in ref.table_category.items() if cat in EHR]
    for row in await conn.fetch(
        """SELECT org_code, table_code, sum(records) AS records FROM upload_monthly_tables
           WHERE month <= $1 AND table_code = ANY($2::text[]) GROUP BY org_code, table_code""",
        month,
        ehr_tables,
    ):
        inputs = out.setdefault(row["org_code"], MonthInputs())
        category = ref.table_category[row["table_code"]]
        inputs.ehr_cumulative[category] = inputs.ehr_cumulative.get(category, 0) + row["records"]
    # Mirrors rollups.conformance_sums: only pairs where max(R, S) > 0 contribute.
    for row in await conn.fetch(
        """SELECT org_code,
                  sum(least(realtime_records, scheduled_records)) AS low,
                  sum(greatest(realtime_records, scheduled_records)) AS high
           FROM conformance_daily
           WHERE business_date >= $1 AND business_date < $2
             AND greatest(realtime_records, scheduled_records) > 0
           GROUP BY org_code""",
        month,
        end,
    ):
        inputs = out.setdefault(row["org_code"], MonthInputs())
        inputs.conformance_low, inputs.conformance_high = int(row["low"]), int(row["high"])
    return out


async def uploads_report(
    conn: Connection, month: date, kind: InstitutionKind, org_code: str | None
) -> list[UploadReportRow]:
    """`GET /v1/reports/uploads`: every institution of `kind` (or only `org_code`'s)."""
    # One snapshot, so every figure of a row comes from the same batches and reference version.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        ref = await load_reference_view(conn, org_code)
        inputs = await month_inputs(conn, month, ref)
    return upload_report(kind, month, inputs, ref)


async def kiosks_report(conn: Connection, month: date, org_code: str | None) -> list[KioskReportRow]:
    """`GET /v1/reports/kiosks`: per institution, hospitals then districts, and a total row."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        ref = await load_reference_view(conn, org_code)
        rows = await conn.fetch(
            "SELECT org_code, kind, transactions, amount FROM kiosk_monthly WHERE month = $1", month
        )
    inputs: dict[str, KioskInputs] = {}
    for row in rows:
        got = inputs.setdefault(row["org_code"], KioskInputs())
        if row["kind"] == "registration":
            got.registrations, got.registration_amount = row["transactions"], row["amount"]
        else:
            got.payments, got.payment_amount = row["transactions"], row["amount"]
    return kiosk_report(inputs, ref)


async def missing_uploads(conn: Connection, day: date, org_code: str | None) -> list[MissingUploadRow]:
    """Institutions with records on any of the 7 days before `day` and none on `day`."""
    rows = await conn.fetch(
        """SELECT i.org_code, i.name, i.kind, max(d.day) AS last_day, count(*) AS active_days
           FROM upload_daily d JOIN cur_institutions i USING (org_code)
           WHERE d.day >= $1::date - 7 AND d.day < $1::date AND d.records > 0
             AND ($2::text IS NULL OR i.org_code = $2)
             AND NOT EXISTS (SELECT 1 FROM upload_daily t
                             WHERE t.org_code = d.org_code AND t.day = $1::date AND t.records > 0)
           GROUP BY i.org_code, i.name, i.kind
           ORDER BY i.org_code""",
        day,
        org_code,
    )
    return [
        MissingUploadRow(
            org_code=r["org_code"],
            name=r["name"],
            kind=InstitutionKind(r["kind"]),
            date=day,
            last_upload_day=r["last_day"],
            active_days_in_previous_7=r["active_days"],
        )
        for r in rows
    ]


def to_csv(model: type[BaseModel], rows: Sequence[BaseModel]) -> str:
    """CSV with a header row of the report's fields; empty cells for nulls, exact decimals."""
    buffer = io.StringIO()
    fields = list(model.model_fields)
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    for row in rows:
        values = []
        for name in fields:
            value = getattr(row, name)
            if value is None:
                values.append("")
            elif isinstance(value, Decimal):
                values.append(f"{value:.2f}")
            elif hasattr(value, "value"):
                values.append(value.value)
            else:
                values.append(value)
        writer.writerow(values)
    return buffer.getvalue()
