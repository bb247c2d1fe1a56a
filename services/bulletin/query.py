"""Everything the bulletin shows for a month, read in one snapshot of the database.

The tables are the report API's own rows (each stream's `report.py`), so the page can never
disagree with `GET /v1/reports/uploads` and `/kiosks`; the detail queries below only add what
the problem lists name (declared and uploaded table codes, records per day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.bulletin.appointments import AppointmentSection, load_appointment_section
from services.bulletin.problems import InstitutionDetail
from services.contract.models import InstitutionKind
from services.reports.common import next_month
from services.storage.connection import Connection
from services.streams.hotline.report import HotlineInputs, hotline_bulletin_inputs
from services.streams.kiosk.model import KioskReportRow
from services.streams.kiosk.report import kiosks_report
from services.streams.remote_uploads.report import RemoteMonth, load_remote_month
from services.streams.uploads.model import UploadReportRow
from services.streams.uploads.report import uploads_report


@dataclass(frozen=True)
class BulletinData:
    """One month's report rows and problem-list detail, as one reader (admin or institution) may see them."""

    month: date
    org_code: str | None
    """The institution whose bulletin this is; None for the admin's (every institution)."""
    districts: list[UploadReportRow]
    hospitals: list[UploadReportRow]
    kiosks: list[KioskReportRow]
    details: dict[str, InstitutionDetail]
    table_names: dict[str, str]
    hotline: HotlineInputs | None = None
    """The 12320 centres' month; None: the section is not shown."""
    appointments: AppointmentSection | None = None
    """预约挂号服务统计表 and 分途径预约情况统计 (None: the section is left out)."""
    remote: RemoteMonth | None = None
    """The remote-medicine platforms' month (远程医疗系统数据统计)."""


async def load_bulletin_data(conn: Connection, month: date, org_code: str | None) -> BulletinData:
    """Read `month` for `org_code` (None: every institution) in one repeatable-read snapshot.

    The consumer keeps writing while we read; one snapshot keeps the problem lists consistent
    with the tables (a day's records cannot appear in one and not the other).
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
    return BulletinData(
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
    )


async def institution_details(conn: Connection, month: date, org_code: str | None) -> dict[str, InstitutionDetail]:
    """Declared and uploaded table codes and records per day of `month`, per institution (or `org_code`'s)."""
    declared: dict[str, set[str]] = {}
    for row in await conn.fetch(
        "SELECT org_code, table_code FROM cur_declarations WHERE $1::text IS NULL OR org_code = $1", org_code
    ):
        declared.setdefault(row["org_code"], set()).add(row["table_code"])
    uploaded: dict[str, set[str]] = {}
    for row in await conn.fetch(
        """SELECT org_code, table_code FROM upload_monthly_tables
           WHERE month = $1 AND records > 0 AND ($2::text IS NULL OR org_code = $2)""",
        month,
        org_code,
    ):
        uploaded.setdefault(row["org_code"], set()).add(row["table_code"])
    daily: dict[str, dict[date, int]] = {}
    for row in await conn.fetch(
        """SELECT org_code, day, records FROM upload_daily
           WHERE day >= $1 AND day < $2 AND ($3::text IS NULL OR org_code = $3)""",
        month,
        next_month(month),
        org_code,
    ):
        daily.setdefault(row["org_code"], {})[row["day"]] = row["records"]
    return {
        org: InstitutionDetail(
            declared=frozenset(declared.get(org, ())),
            uploaded=frozenset(uploaded.get(org, ())),
            daily_records=daily.get(org, {}),
        )
        for org in declared.keys() | uploaded.keys() | daily.keys()
    }
