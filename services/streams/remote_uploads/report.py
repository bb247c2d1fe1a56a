"""The remote-platforms report (pure) and the query that feeds it; the uploads from institutions not connected.

Connections come from the reference data in force (`ReferenceSnapshot`: who is connected at the
month's end, who was connected on a day), never from events; volumes from `remote_upload_daily`.
`load_remote_month` reads both in one snapshot, `remote_report` computes the contract's figures
and `unconnected_uploads` finds the uploads made on days their institution was not connected to
the platform (counted all the same: the contract lists them as a problem). The route, the
command line and the bulletin all go through these.

An institution's token sees what its own rows give (docs/contract-decisions.md): whether it is
connected (`connected` 0 or 1, its own city, district, region and level), its own uploads'
sums, its own consultations to date without the city's opening balance, and itself as the only
possible top uploader.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from services.contract.models import BalanceMetric, InstitutionLevel, Region, RemotePlatform
from services.reports.common import next_month
from services.storage.connection import Connection
from services.storage.reference import ReferenceSnapshot, load_snapshot
from services.streams.remote_uploads.fold import REMOTE_UPLOAD_DAILY
from services.streams.remote_uploads.model import (
    COUNT_KEYS,
    MAIN_COUNT,
    PLATFORM_COUNTS,
    RegionLevelCount,
    RemotePlatformFigures,
    RemotePlatformsReport,
    TopUploader,
)
from services.streams.rollups import Deltas

TOP_UPLOADERS = 3
_LEVEL_ORDER = {level: n for n, level in enumerate((*InstitutionLevel, None))}
_REGION_ORDER = {region: n for n, region in enumerate(Region)}

DayKey = tuple[str, RemotePlatform, date]
"""(org_code, platform, day in the platform time zone)."""
DaySums = tuple[int, ...]
"""Uploads, then the sum of each of COUNT_KEYS, in that order."""


@dataclass(frozen=True)
class RemoteMonth:
    """What the report of one month reads, as one reader (admin or institution) may see it."""

    month: date
    """First day of the month."""
    org_code: str | None
    """The institution whose figures these are; None for every institution."""
    ref: ReferenceSnapshot
    names: Mapping[str, str]
    """org_code -> name, of the institutions the reader may see."""
    days: Mapping[DayKey, DaySums]
    """The month's rollup rows (only the reader's own when `org_code` is set)."""
    consultations_since_balance: int | None
    """Consultations of the consultation platform from the opening balance's month to this one's
    end (the reader's own), None when no `remote_consultations` balance is in force for the month."""


@dataclass(frozen=True, slots=True)
class UnconnectedUpload:
    """Uploads of one institution to one platform on days it was not connected to it (a problem)."""

    org_code: str
    platform: RemotePlatform
    days: tuple[date, ...]
    uploads: int
    counts: Mapping[str, int]
    """The sums of the platform's count keys over those days."""


def _sums(rows: Iterable[Sequence[int]]) -> list[int]:
    """Uploads and each count, summed over `rows`."""
    total = [0] * (1 + len(COUNT_KEYS))
    for row in rows:
        for n, value in enumerate(row):
            total[n] += value
    return total


def _region_level_rows(counts: Counter[tuple[Region, InstitutionLevel | None]]) -> list[RegionLevelCount]:
    ordered = sorted(counts.items(), key=lambda item: (_REGION_ORDER[item[0][0]], _LEVEL_ORDER[item[0][1]]))
    return [RegionLevelCount(region=region, level=level, count=n) for (region, level), n in ordered]


def platform_figures(data: RemoteMonth, platform: RemotePlatform) -> RemotePlatformFigures:
    """One platform's figures of the month (contract revision 2, "Monthly figures of the new streams")."""
    connected = data.ref.connected_at_month_end(platform, data.month)
    if data.org_code is not None:
        connected = connected & {data.org_code}
    infos = [data.ref.institution_info[org] for org in connected if org in data.ref.institution_info]
    in_city = [info for info in infos if info.region is Region.CITY and info.district is not None]
    rows_by_org: dict[str, list[DaySums]] = {}
    for (org, row_platform, _), sums in data.days.items():
        if row_platform is platform:
            rows_by_org.setdefault(org, []).append(sums)
    by_org = {org: _sums(rows) for org, rows in rows_by_org.items()}
    total = _sums(by_org.values())
    figures = dict(zip(COUNT_KEYS, total[1:], strict=True))
    main = 1 + COUNT_KEYS.index(MAIN_COUNT[platform])
    ranked = sorted(((-sums[main], org) for org, sums in by_org.items() if sums[main] > 0))[:TOP_UPLOADERS]
    cumulative = None
    if platform is RemotePlatform.CONSULTATION and data.consultations_since_balance is not None:
        balance = data.ref.opening_balance(BalanceMetric.REMOTE_CONSULTATIONS, data.month)
        # The balance is the city's, no institution's row: an institution sees its own consultations.
        opening = balance.value if balance is not None and data.org_code is None else 0
        cumulative = opening + data.consultations_since_balance
    return RemotePlatformFigures(
        platform=platform,
        connected=len(connected),
        cities=len({info.city for info in infos if info.city is not None}),
        districts=len({info.district for info in in_city}),
        districts_primary=len({info.district for info in in_city if info.level is InstitutionLevel.PRIMARY}),
        by_region_level=_region_level_rows(Counter((info.region, info.level) for info in infos)),
        consultations=figures["consultations"],
        cases=figures["cases"],
        reports=figures["reports"],
        specimens=figures["specimens"],
        images=figures["images"],
        consultations_cumulative=cumulative,
        top_uploaders=[TopUploader(org_code=org, name=data.names.get(org, org), value=-neg) for neg, org in ranked],
    )


def remote_report(data: RemoteMonth) -> RemotePlatformsReport:
    """`GET /v1/reports/remote-platforms`: the four platforms in the contract's order."""
    return RemotePlatformsReport(platforms=[platform_figures(data, platform) for platform in RemotePlatform])


def unconnected_uploads(data: RemoteMonth) -> list[UnconnectedUpload]:
    """Per institution and platform, the month's uploads on days it was not connected; by org_code, platform."""
    found: dict[tuple[str, RemotePlatform], list[tuple[date, DaySums]]] = {}
    for (org, platform, day), sums in data.days.items():
        if sums[0] > 0 and not data.ref.is_connected(platform, org, day):
            found.setdefault((org, platform), []).append((day, sums))
    out = []
    order = list(RemotePlatform)
    for (org, platform), rows in sorted(found.items(), key=lambda item: (item[0][0], order.index(item[0][1]))):
        total = _sums(sums for _, sums in rows)
        keys = [key for key in COUNT_KEYS if key in PLATFORM_COUNTS[platform]]
        out.append(
            UnconnectedUpload(
                org_code=org,
                platform=platform,
                days=tuple(sorted(day for day, _ in rows)),
                uploads=total[0],
                counts={key: total[1 + COUNT_KEYS.index(key)] for key in keys},
            )
        )
    return out


def remote_month_from_deltas(
    deltas: Deltas, month: date, ref: ReferenceSnapshot, names: Mapping[str, str], org_code: str | None = None
) -> RemoteMonth:
    """What `load_remote_month` reads, computed in memory from folded events (rollup rows not yet stored)."""
    end = next_month(month)
    balance = ref.opening_balance(BalanceMetric.REMOTE_CONSULTATIONS, month)
    days: dict[DayKey, DaySums] = {}
    since = 0
    for (org, platform, day), values in deltas.tables.get(REMOTE_UPLOAD_DAILY.name, {}).items():
        if org_code is not None and org != org_code:
            continue
        if month <= day < end:
            days[(org, RemotePlatform(platform), day)] = tuple(values)
        if platform == RemotePlatform.CONSULTATION and balance is not None and balance.as_of <= day < end:
            since += values[1 + COUNT_KEYS.index("consultations")]
    visible = {org: name for org, name in names.items() if org_code is None or org == org_code}
    return RemoteMonth(month, org_code, ref, visible, days, since if balance is not None else None)


async def load_remote_month(conn: Connection, month: date, org_code: str | None) -> RemoteMonth:
    """Read `month` for `org_code` (None: every institution) in one repeatable-read snapshot."""
    end = next_month(month)
    columns = ", ".join(("uploads", *COUNT_KEYS))
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        ref = await load_snapshot(conn)
        names = {
            r["org_code"]: r["name"]
            for r in await conn.fetch(
                "SELECT org_code, name FROM cur_institutions WHERE $1::text IS NULL OR org_code = $1", org_code
            )
        }
        rows = await conn.fetch(
            f"""SELECT org_code, platform, day, {columns} FROM remote_upload_daily
                WHERE day >= $1 AND day < $2 AND ($3::text IS NULL OR org_code = $3)""",
            month,
            end,
            org_code,
        )
        balance = ref.opening_balance(BalanceMetric.REMOTE_CONSULTATIONS, month)
        since = None
        if balance is not None:
            since = await conn.fetchval(
                """SELECT coalesce(sum(consultations), 0) FROM remote_upload_daily
                   WHERE platform = 'consultation' AND day >= $1 AND day < $2
                     AND ($3::text IS NULL OR org_code = $3)""",
                balance.as_of,
                end,
                org_code,
            )
    days = {
        (r["org_code"], RemotePlatform(r["platform"]), r["day"]): (r["uploads"], *(r[key] for key in COUNT_KEYS))
        for r in rows
    }
    return RemoteMonth(month, org_code, ref, names, days, None if since is None else int(since))


async def remote_platforms_report(conn: Connection, month: date, org_code: str | None) -> RemotePlatformsReport:
    """`GET /v1/reports/remote-platforms?month=`: every platform (an institution: its own figures)."""
    return remote_report(await load_remote_month(conn, month, org_code))
