"""The bulletin for the API and the command line: read a month, render the page, print the PDF."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from services.bulletin import output, pdf
from services.bulletin.render import render_html
from services.bulletin.settings import BulletinSettings
from services.quality.month import load_quality_month
from services.quality.settings import Thresholds
from services.reports.cutoff import Cutoff, CutoffKind
from services.reports.restatements import earlier_restatements
from services.settings import settings_on
from services.storage.connection import Connection


def settings_of(state: Any) -> BulletinSettings:
    """An app's bulletin settings: `state.bulletin_settings` if its entry point set them, else read once.

    The aggregator's factory does not know the bulletin; until it sets the attribute itself, the
    settings are read from the environment on the first request and kept on the app.
    """
    return settings_on(state, "bulletin_settings", BulletinSettings)


async def bulletin_html(
    conn: Connection,
    month: date,
    *,
    org_code: str | None,
    settings: BulletinSettings,
    zone: ZoneInfo,
    now: datetime | None = None,
    cutoff: Cutoff | None = None,
    thresholds: Thresholds | None = None,
) -> str:
    """The month's bulletin page; an institution (`org_code`) gets only its own rows and problems.

    `cutoff` says which figures the connection's rollups hold (live by default; inside
    `rollups_as_of`, those of the cutoff's time), and is printed on the page; the page also lists
    the restatements of the months closed before this one, as they stood at the same time.
    `thresholds`: the checks' (services/quality/settings.py); the contract's defaults with the
    bulletin's conformance threshold when not given.
    """
    cutoff = cutoff or Cutoff(CutoffKind.LIVE, now or datetime.now(zone))
    data = await load_quality_month(conn, month, org_code)
    until = None if cutoff.kind is CutoffKind.LIVE else cutoff.at
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        restated = await earlier_restatements(conn, month, zone, org_code, until)
    return render_html(
        data,
        now=now or cutoff.at,
        zone=zone,
        conformance_threshold=settings.conformance_threshold,
        thresholds=thresholds,
        cutoff=cutoff,
        restatements=restated,
    )


async def bulletin_pdf(html: str, settings: BulletinSettings) -> bytes:
    """The page printed to PDF by headless Chromium."""
    return await pdf.print_pdf(html, chromium=settings.chromium, timeout_s=settings.render_timeout_s)


@dataclass(frozen=True)
class WrittenBulletin:
    """The files `write_bulletin` wrote."""

    html: Path
    pdf: Path
    pages: int


async def bulletin_files(
    conn: Connection, month: date, *, settings: BulletinSettings, zone: ZoneInfo, thresholds: Thresholds | None = None
) -> tuple[str, bytes]:
    """The page of every institution and its PDF."""
    html = await bulletin_html(conn, month, org_code=None, settings=settings, zone=zone, thresholds=thresholds)
    return html, await bulletin_pdf(html, settings)


def write_bulletin(folder: Path, month: date, html: str, document: bytes) -> WrittenBulletin:
    """Write `bulletin-YYYY-MM.html` and `.pdf` into `folder` (created if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"bulletin-{month:%Y-%m}"
    html_path, pdf_path = stem.with_suffix(".html"), stem.with_suffix(".pdf")
    html_path.write_text(html, encoding="utf-8")
    pdf_path.write_bytes(document)
    return WrittenBulletin(html_path, pdf_path, output.pdf_page_count(document))
