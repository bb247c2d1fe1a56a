"""One institution's month as its page shows it, read in one snapshot of the database.

Every figure is a row of a report the API already serves to the institution's own token
(`uploads_report`, `kiosks_report`, `appointments_report`, `hotline_report_of`,
`remote_platforms_report`), so the page can never disagree with `/v1/reports/...`; the
heatmap's days and the missing tables come from the same rollups and the bulletin's detail query.
The checks read the month as `GET /v1/reports/quality` does for the institution's own token
(`load_quality_month` scoped to its org_code), so they never compare it with rows it cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.contract.models import InstitutionKind
from services.quality.month import QualityMonth, load_quality_month
from services.storage.connection import Connection
from services.streams.appointments.model import AppointmentRow
from services.streams.appointments.report import appointments_report
from services.streams.hotline.model import HotlineRow
from services.streams.hotline.report import hotline_report_of
from services.streams.kiosk.model import KioskReportRow
from services.streams.kiosk.report import kiosks_report
from services.streams.remote_uploads.model import RemotePlatformFigures
from services.streams.remote_uploads.report import remote_platforms_report
from services.streams.uploads.fold import ChannelRecords
from services.streams.uploads.model import UploadReportRow
from services.streams.uploads.report import daily_channel_records, uploads_report

UPLOADING_KINDS = (InstitutionKind.DISTRICT, InstitutionKind.HOSPITAL)
"""The kinds the uploads report and the declarations are about."""


@dataclass(frozen=True, slots=True)
class InstitutionEntry:
    """An institution of the reference data in force, as the admin's list shows it."""

    org_code: str
    name: str
    kind: InstitutionKind


@dataclass(frozen=True, slots=True)
class MissingTable:
    """A table the institution declared and sent no record of this month."""

    table_code: str
    name: str | None
    """None: the table is no longer in the reference data."""


@dataclass(frozen=True)
class InstitutionMonth:
    """What one institution's page shows for one month."""

    institution: InstitutionEntry
    month: date
    uploads: UploadReportRow | None
    """The institution's row of the uploads report (None for a kind without uploads and no records)."""
    channel_days: dict[date, ChannelRecords]
    """Records per business date and channel (absent days: none)."""
    declared: frozenset[str]
    missing: tuple[MissingTable, ...]
    kiosk: KioskReportRow | None
    appointments: AppointmentRow | None
    hotline: HotlineRow | None
    remote: tuple[RemotePlatformFigures, ...]
    """The remote-medicine platforms the institution uploaded to this month."""
    quality: QualityMonth
    """The month as the quality checks read it for this institution's own token (its rows only)."""


async def list_institutions(conn: Connection) -> list[InstitutionEntry]:
    """Every institution of the reference data in force, by kind then code."""
    rows = await conn.fetch("SELECT org_code, name, kind FROM cur_institutions ORDER BY kind, org_code")
    return [InstitutionEntry(r["org_code"], r["name"], InstitutionKind(r["kind"])) for r in rows]


async def find_institution(conn: Connection, org_code: str) -> InstitutionEntry | None:
    """One institution of the reference data in force, or None."""
    row = await conn.fetchrow("SELECT org_code, name, kind FROM cur_institutions WHERE org_code = $1", org_code)
    return None if row is None else InstitutionEntry(row["org_code"], row["name"], InstitutionKind(row["kind"]))


async def load_institution_month(conn: Connection, org_code: str, month: date) -> InstitutionMonth | None:
    """`org_code`'s month (None: not an institution of the reference data in force)."""
    # One snapshot: the consumer keeps writing, and the heatmap must add up to the table beside it.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        institution = await find_institution(conn, org_code)
        if institution is None:
            return None
        upload_rows = await uploads_report(conn, month, institution.kind, org_code)
        channel_days = await daily_channel_records(conn, month, org_code)
        # A savepoint inside this snapshot (same isolation): the checks see the figures beside them.
        quality = await load_quality_month(conn, month, org_code)
        kiosks = await kiosks_report(conn, month, org_code)
        appointments = await appointments_report(conn, month, org_code)
        hotline = await hotline_report_of(conn, month, org_code)
        remote = await remote_platforms_report(conn, month, org_code)
    uploads = upload_rows[0] if upload_rows else None
    if uploads is not None and institution.kind not in UPLOADING_KINDS and uploads.records_uploaded == 0:
        uploads = None
    detail = quality.details.get(org_code)
    names = quality.table_names
    declared = detail.declared if detail else frozenset()
    uploaded = detail.uploaded if detail else frozenset()
    return InstitutionMonth(
        institution=institution,
        month=month,
        uploads=uploads,
        channel_days=channel_days,
        declared=declared,
        missing=tuple(MissingTable(code, names.get(code)) for code in sorted(declared - uploaded)),
        kiosk=_own(kiosks, org_code),
        appointments=next((r for r in appointments.rows if r.org_code == org_code), None),
        hotline=next((r for r in hotline.rows if r.org_code == org_code), None),
        remote=tuple(p for p in remote.platforms if _volume(p) > 0),
        quality=quality,
    )


def _own(rows: list[KioskReportRow], org_code: str) -> KioskReportRow | None:
    row = next((r for r in rows if r.org_code == org_code and r.group != "total"), None)
    if row is None:
        return None
    figures = (row.kiosks, row.registrations, row.payments, row.registration_amount, row.payment_amount)
    # An amount without transactions is shown: it is one of the contradictions the page is for.
    if not any(figures):
        return None
    return row


def _volume(figures: RemotePlatformFigures) -> int:
    return figures.consultations + figures.cases + figures.reports + figures.specimens + figures.images
