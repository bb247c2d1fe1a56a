"""Everything the checks (and the bulletin) read of a month, in one snapshot of the database.

The tables are the report API's own rows (each stream's `report.py`), so a check can never
disagree with `GET /v1/reports/uploads`, `/kiosks`, `/hotline` or `/appointments`; the detail
queries only add what the checks name (declared and uploaded tables, records per day, each
kiosk's days) and the previous three months the volume checks compare with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from services.contract.models import InstitutionKind
from services.quality.appointments import AppointmentSection, load_appointment_section
from services.quality.problems import InstitutionDetail
from services.reports.common import next_month
from services.storage.connection import Connection
from services.streams.hotline.report import HotlineInputs, hotline_bulletin_inputs, months_before
from services.streams.kiosk.model import KioskReportRow
from services.streams.kiosk.report import kiosks_report
from services.streams.remote_uploads.report import RemoteMonth, load_remote_month
from services.streams.uploads.model import UploadReportRow
from services.streams.uploads.report import uploads_report


@dataclass(frozen=True)
class QualityMonth:
    """One month's report rows and check detail, as one reader (admin or institution) may see them."""

    month: date
    org_code: str | None
    """The institution reading; None for the admin (every institution)."""
    districts: list[UploadReportRow]
    hospitals: list[UploadReportRow]
    kiosks: list[KioskReportRow]
    details: dict[str, InstitutionDetail]
    table_names: dict[str, str]
    hotline: HotlineInputs | None = None
    """The 12320 centres' month; None: not read (the bulletin leaves its section out)."""
    appointments: AppointmentSection | None = None
    """The appointments report of the month and the month before (None: not read)."""
    remote: RemoteMonth | None = None
    """The remote-medicine platforms' month."""
    records_before: Mapping[str, Mapping[date, int]] = field(default_factory=dict)
    """org_code -> each of the previous three months -> records uploaded."""
    transactions_before: Mapping[str, Mapping[date, int]] = field(default_factory=dict)
    """org_code -> each of the previous three months -> kiosk transactions."""
    cities: Mapping[str, str | None] = field(default_factory=dict)
    """org_code -> city of every institution (the cross-stream check)."""
    no_upload_days: frozenset[date] = frozenset()
    """The reference data's days on which nothing is expected."""


async def load_quality_month(conn: Connection, month: date, org_code: str | None) -> QualityMonth:
    """Read `month` for `org_code` (None: every institution) in one repeatable-read snapshot.

    The consumer keeps writing while we read; one snapshot keeps the checks consistent with the
    tables (a day's records cannot appear in one and not the other).
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        districts = await uploads_report(conn, month, InstitutionKind.DISTRICT, org_code)
        hospitals = await uploads_report(conn, month, InstitutionKind.HOSPITAL, org_code)
        kiosks = await kiosks_report(conn, month, org_code)
        details = await institution_details(conn, month, org_code)
        names = {r["table_code"]: r["name"] for r in await conn.fetch("SELECT table_code, name FROM cur_tables")}
        hotline = await hotline_bulletin_inputs(conn, month, org_code)
        appointments = await load_appointment_section(conn, month, org_code)
        remote = await load_remote_month(conn, month, org_code)
        records_before, transactions_before = await _months_before(conn, month, org_code)
        cities = {r["org_code"]: r["city"] for r in await conn.fetch("SELECT org_code, city FROM cur_institutions")}
        quiet = frozenset(r["day"] for r in await conn.fetch("SELECT day FROM cur_no_upload_days"))
    return QualityMonth(
        month,
        org_code,
        districts,
        hospitals,
        kiosks,
        details,
        names,
        hotline=hotline,
        appointments=appointments,
        remote=remote,
        records_before=records_before,
        transactions_before=transactions_before,
        cities=cities,
        no_upload_days=quiet,
    )


# (table, the column summed): what the volume checks compare, both keyed by institution and month.
_VOLUMES = (("upload_monthly_tables", "records"), ("kiosk_monthly", "transactions"))


async def _months_before(
    conn: Connection, month: date, org_code: str | None
) -> tuple[dict[str, dict[date, int]], dict[str, dict[date, int]]]:
    earliest = months_before(month)[-1]
    found: list[dict[str, dict[date, int]]] = []
    for table, column in _VOLUMES:
        sums: dict[str, dict[date, int]] = {}
        for row in await conn.fetch(
            f"""SELECT org_code, month, sum({column}) AS value FROM {table}
                WHERE month >= $1 AND month < $2 AND ($3::text IS NULL OR org_code = $3)
                GROUP BY org_code, month""",
            earliest,
            month,
            org_code,
        ):
            sums.setdefault(row["org_code"], {})[row["month"]] = int(row["value"])
        found.append(sums)
    records, transactions = found
    return records, transactions


async def institution_details(conn: Connection, month: date, org_code: str | None) -> dict[str, InstitutionDetail]:
    """Declared and uploaded tables (with their records), records per day and each kiosk's
    transactions per day of `month`, per institution (or `org_code`'s)."""
    declared: dict[str, set[str]] = {}
    for row in await conn.fetch(
        "SELECT org_code, table_code FROM cur_declarations WHERE $1::text IS NULL OR org_code = $1", org_code
    ):
        declared.setdefault(row["org_code"], set()).add(row["table_code"])
    tables: dict[str, dict[str, int]] = {}
    for row in await conn.fetch(
        """SELECT org_code, table_code, records FROM upload_monthly_tables
           WHERE month = $1 AND records > 0 AND ($2::text IS NULL OR org_code = $2)""",
        month,
        org_code,
    ):
        tables.setdefault(row["org_code"], {})[row["table_code"]] = int(row["records"])
    end = next_month(month)
    daily: dict[str, dict[date, int]] = {}
    for row in await conn.fetch(
        """SELECT org_code, day, records FROM upload_daily
           WHERE day >= $1 AND day < $2 AND ($3::text IS NULL OR org_code = $3)""",
        month,
        end,
        org_code,
    ):
        daily.setdefault(row["org_code"], {})[row["day"]] = row["records"]
    kiosks: dict[str, dict[str, dict[date, int]]] = {}
    for row in await conn.fetch(
        """SELECT org_code, kiosk_id, day, transactions FROM kiosk_daily
           WHERE day >= $1 AND day < $2 AND ($3::text IS NULL OR org_code = $3)""",
        month,
        end,
        org_code,
    ):
        kiosks.setdefault(row["org_code"], {}).setdefault(row["kiosk_id"], {})[row["day"]] = int(row["transactions"])
    return {
        org: InstitutionDetail(
            declared=frozenset(declared.get(org, ())),
            uploaded=frozenset(tables.get(org, {})),
            daily_records=daily.get(org, {}),
            table_records=tables.get(org, {}),
            kiosk_daily=kiosks.get(org, {}),
        )
        for org in declared.keys() | tables.keys() | daily.keys() | kiosks.keys()
    }
