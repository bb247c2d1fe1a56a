"""Restatements: the cells of a closed month's reports whose value today differs from the frozen one.

A report's JSON body is flattened into cells, one per figure: (org_code, field), where org_code
is that of the nearest row carrying one (None for totals and per-platform rows) and field the
path to the value (`records_uploaded`, `rows.online_12320`, `total.calls`,
`platforms.consultation.top_uploaders.value`; a row without org_code is named by its
`platform_code`, `platform` or `group`). Figures are numbers, decimal strings and nulls; names,
kinds and other labels are not compared. `restatements` sets every report's frozen body against
today's, computed by the same function (`services/reports/catalog.py`), and counts for each
cell the events of the report's stream that count in the month and were received after the
cutoff (of the cell's institution; of every institution for a total).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any

from pydantic import BaseModel, ConfigDict

from services.reports.catalog import REPORTS, Body
from services.reports.common import next_month
from services.storage.connection import Connection
from services.storage.errors import SnapshotNotFoundError
from services.storage.months import Month, MonthState, frozen_report, list_months
from services.streams import STREAMS

_IDENTITY = ("platform_code", "platform", "group")
"""What names a row that has no org_code, in this order."""
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")

CellKey = tuple[str | None, str]
"""(org_code or None, field path)."""


class Restatement(BaseModel):
    """One cell of a closed month that changed after the close (a row of `GET /v1/reports/restatements`)."""

    model_config = ConfigDict(frozen=True)

    report: str
    org_code: str | None
    field: str
    value_at_close: Any
    value_now: Any
    events_after_cutoff: int


def _is_figure(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and _DECIMAL.fullmatch(value) is not None


def cells(body: Body) -> dict[CellKey, Any]:
    """Every figure of a report's JSON body by (org_code, field)."""
    out: dict[CellKey, Any] = {}

    def walk(value: Any, path: str, org: str | None) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key != "org_code":
                    walk(item, f"{path}.{key}" if path else key, org)
        elif isinstance(value, list):
            for n, item in enumerate(value):
                if isinstance(item, dict) and item.get("org_code") is not None:
                    walk(item, path, str(item["org_code"]))
                    continue
                name = next((item[k] for k in _IDENTITY if isinstance(item, dict) and item.get(k) is not None), n)
                walk(item, f"{path}.{name}" if path else str(name), org)
        elif _is_figure(value):
            out[(org, path)] = value

    walk(body, "", None)
    return out


def changed_cells(report: str, frozen: Body, now: Body, late: Mapping[str, int]) -> list[Restatement]:
    """The cells whose value differs between the frozen and today's body, sorted by institution and field.

    `late`: events received after the cutoff per org_code; a cell without institution gets their sum.
    A cell found on one side only (a row that appeared or went) has null on the other.
    """
    before, after = cells(frozen), cells(now)
    out = []
    for key in sorted(before.keys() | after.keys(), key=lambda k: (k[0] or "", k[1])):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        org, field = key
        count = late.get(org, 0) if org is not None else sum(late.values())
        out.append(
            Restatement(
                report=report, org_code=org, field=field, value_at_close=old, value_now=new, events_after_cutoff=count
            )
        )
    return out


async def events_after_cutoff(
    conn: Connection, stream_name: str, month: Month, zone: tzinfo, org_code: str | None, until: datetime | None
) -> dict[str, int]:
    """Per org_code, the events of the stream counting in the month that were received after its cutoff
    (and, with `until`, by then)."""
    stream = STREAMS[stream_name]
    start = datetime(month.month.year, month.month.month, 1, tzinfo=zone)
    end_day = next_month(month.month)
    end = datetime(end_day.year, end_day.month, 1, tzinfo=zone)
    moment = stream.moment_field
    rows = await conn.fetch(
        f"""SELECT org_code, count(*) AS events FROM {stream.raw.name}
            WHERE {moment} >= $1 AND {moment} < $2 AND received_at > $3
              AND ($4::timestamptz IS NULL OR received_at <= $4) AND ($5::text IS NULL OR org_code = $5)
            GROUP BY org_code""",
        start,
        end,
        month.cutoff,
        until,
        org_code,
    )
    return {r["org_code"]: int(r["events"]) for r in rows}


@dataclass(frozen=True)
class MonthRestatements:
    """A closed month's restatements as one reader sees them."""

    month: Month
    cells: list[Restatement]
    events_after_cutoff: int
    """Events of every report's stream received after the cutoff that count in the month."""

    def as_dict(self) -> dict[str, Any]:
        """JSON form of `GET /v1/reports/restatements`."""
        return {
            "month": f"{self.month.month:%Y-%m}",
            "state": self.month.state.value,
            "cutoff": self.month.cutoff.isoformat() if self.month.cutoff else None,
            "events_after_cutoff": self.events_after_cutoff,
            "restatements": [c.model_dump() for c in self.cells],
        }


async def restatements(
    conn: Connection,
    month: Month,
    zone: tzinfo,
    org_code: str | None = None,
    until: datetime | None = None,
    *,
    count_late: bool = True,
) -> MonthRestatements:
    """Every changed cell of a closed month for the admin (None) or one institution (its own view).

    Raises what `frozen_report` raises. Today's bodies are read from the rollups the connection
    sees (inside `rollups_as_of`, those of an earlier time: pass it as `until`). The late events
    per institution are counted from the raw rows of the month, only for the streams whose
    reports changed; the month's total for the admin now from the key store (`late_events`), for
    an institution or an earlier time from the raw rows of every stream. `count_late=False`
    leaves every count at 0 (the caller counts the total itself).
    """
    changed: list[tuple[str, Body, Body]] = []
    for name, report in REPORTS.items():
        _, frozen = await frozen_report(conn, month.month, name, org_code)
        now = await report.read(conn, month.month, org_code)
        if changed_cells(name, frozen, now, {}):
            changed.append((name, frozen, now))
    found: list[Restatement] = []
    if not count_late:
        for name, frozen, now in changed:
            found.extend(changed_cells(name, frozen, now, {}))
        return MonthRestatements(month, found, 0)
    late: dict[str, dict[str, int]] = {}
    streams = dict.fromkeys(report.stream for report in REPORTS.values())
    wanted = streams if org_code is not None or until is not None else {REPORTS[n].stream for n, _, _ in changed}
    for stream in wanted:
        late[stream] = await events_after_cutoff(conn, stream, month, zone, org_code, until)
    for name, frozen, now in changed:
        found.extend(changed_cells(name, frozen, now, late[REPORTS[name].stream]))
    if org_code is None and until is None:
        total = await late_events(conn, month)
    else:
        total = sum(sum(counts.values()) for counts in late.values())
    return MonthRestatements(month, found, total)


async def late_events(conn: Connection, month: Month) -> int:
    """Events counted in a closed month that were received after its cutoff, from the key store.

    The same number as the raw rows of every stream give (every event counted has one key, in the
    partition of the month it counted in, with the collector's `received_at`), read from the
    month's narrow key partition rather than every stream's raw rows.
    """
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM event_keys WHERE month = $1 AND received_at > $2", month.month, month.cutoff
        )
    )


async def earlier_restatements(
    conn: Connection, month: date, zone: tzinfo, org_code: str | None = None, until: datetime | None = None
) -> list[MonthRestatements]:
    """The restatements of every month before `month` that was closed (by `until`, if given), oldest
    first; months with no changed cell, or no frozen view for the reader, are left out."""
    out = []
    for earlier in await list_months(conn):
        if earlier.month >= month or earlier.state is MonthState.OPEN or earlier.cutoff is None:
            continue
        if until is not None and earlier.cutoff > until:
            continue
        try:
            found = await restatements(conn, earlier, zone, org_code, until)
        except SnapshotNotFoundError:
            continue
        if found.cells:
            out.append(found)
    return out
