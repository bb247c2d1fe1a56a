"""Every monthly report of the platform, by name: what closing a month freezes and restatements compare.

A report here is its name, the stream whose events it counts, and how to read its JSON body for
a month as one reader sees it (None: every institution; an org_code: that institution's own
view). The routes, the snapshots of a closed month (`services/storage/months.py`) and the
restatements (`services/reports/restatements.py`) all read the bodies through `REPORTS`, so the
frozen body and today's are computed by the same function and can only differ by the data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.contract.models import InstitutionKind
from services.storage.connection import Connection
from services.streams.appointments.report import appointments_report
from services.streams.hotline.report import hotline_report_of
from services.streams.kiosk.report import kiosks_report
from services.streams.remote_uploads.report import remote_platforms_report
from services.streams.uploads.report import uploads_report

Body = Any
"""A report's JSON value (a list of rows, or an object), as `model_dump(mode="json")` gives it."""
Read = Callable[[Connection, date, str | None], Awaitable[Body]]


@dataclass(frozen=True)
class Report:
    """One monthly report."""

    name: str
    """Its name in snapshots and restatements (the route's last path segment, with the kind for uploads)."""
    stream: str
    """The `STREAMS` name of the stream whose events it counts (restatements count its late events)."""
    read: Read
    """(connection, first day of the month, org_code or None) → the report's JSON body."""


def uploads_of(kind: InstitutionKind) -> Read:
    """The uploads report of one kind of institution."""

    async def read(conn: Connection, month: date, org_code: str | None) -> Body:
        return [row.model_dump(mode="json") for row in await uploads_report(conn, month, kind, org_code)]

    return read


async def _kiosks(conn: Connection, month: date, org_code: str | None) -> Body:
    return [row.model_dump(mode="json") for row in await kiosks_report(conn, month, org_code)]


async def _appointments(conn: Connection, month: date, org_code: str | None) -> Body:
    return (await appointments_report(conn, month, org_code)).model_dump(mode="json")


async def _hotline(conn: Connection, month: date, org_code: str | None) -> Body:
    return (await hotline_report_of(conn, month, org_code)).model_dump(mode="json")


async def _remote_platforms(conn: Connection, month: date, org_code: str | None) -> Body:
    return (await remote_platforms_report(conn, month, org_code)).model_dump(mode="json")


REPORTS: Mapping[str, Report] = {
    r.name: r
    for r in (
        Report("uploads-district", "upload", uploads_of(InstitutionKind.DISTRICT)),
        Report("uploads-hospital", "upload", uploads_of(InstitutionKind.HOSPITAL)),
        Report("kiosks", "kiosk", _kiosks),
        Report("appointments", "appointment", _appointments),
        Report("hotline", "hotline_contact", _hotline),
        Report("remote-platforms", "remote_upload", _remote_platforms),
    )
}
"""Every report, in the bulletin's order of streams; a new stream's report is one entry here."""


def uploads_report_of(kind: InstitutionKind) -> Report:
    """The uploads report of `kind`: the registered one (districts, hospitals), or one of the same
    shape that nothing freezes (institutions of kind hotline or other have no uploads report)."""
    name = f"uploads-{kind.value}"
    return REPORTS.get(name) or Report(name, "upload", uploads_of(kind))


async def read_all(conn: Connection, month: date, org_code: str | None) -> dict[str, Body]:
    """Every report's body for one reader, in one repeatable-read snapshot of the database."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return {name: await report.read(conn, month, org_code) for name, report in REPORTS.items()}
