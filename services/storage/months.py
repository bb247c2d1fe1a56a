"""The `months` table: a month is open, then closed, then archived (migration 0010).

- The aggregator creates a month (and its `event_keys` partition) on the month's first event
  (`ensure_months`).
- Closing is `close_month`, the one place where a month becomes closed: the cutoff, and a
  frozen snapshot of every report of the month (`month_snapshots`, migration 0011) that
  `as_of=closed` answers and restatements compare today's figures with.
- Archiving (`archive_month`, `archive_due`) drops the month's key partition in the same
  transaction that marks it archived, and notifies `MONTHS_CHANNEL`: the collectors refuse
  the month's events from then on (422), and the aggregators dead-letter any already on the
  topic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

import asyncpg
import orjson

from services.reports.catalog import read_all
from services.storage.connection import Connection
from services.storage.errors import MonthNotFoundError, MonthStateError, SnapshotNotFoundError
from services.storage.live import LiveValue
from services.streams.months import ArchivedMonths

MONTHS_CHANNEL = "months_changed"
"""NOTIFY channel: a month was closed or archived (the collectors' and aggregators' caches reload)."""


class MonthState(StrEnum):
    """Where a month is in its life."""

    OPEN = "open"
    CLOSED = "closed"
    ARCHIVED = "archived"


@dataclass(frozen=True)
class Month:
    """One row of `months`."""

    month: date
    state: MonthState
    opened_at: datetime
    cutoff: datetime | None
    closed_at: datetime | None
    archived_at: datetime | None

    def as_dict(self) -> dict[str, str | None]:
        """JSON form (`YYYY-MM`, RFC 3339 times)."""

        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at else None

        return {
            "month": f"{self.month:%Y-%m}",
            "state": self.state.value,
            "opened_at": iso(self.opened_at),
            "cutoff": iso(self.cutoff),
            "closed_at": iso(self.closed_at),
            "archived_at": iso(self.archived_at),
        }


_COLUMNS = "month, state, opened_at, cutoff, closed_at, archived_at"


def _month(r: asyncpg.Record) -> Month:
    return Month(r["month"], MonthState(r["state"]), r["opened_at"], r["cutoff"], r["closed_at"], r["archived_at"])


def key_partition(month: date) -> str:
    """The name of the `event_keys` partition of `month` (ensure_month in migration 0010 names it so)."""
    return f"event_keys_{month:%Y_%m}"


async def ensure_months(conn: Connection, months: Iterable[date]) -> dict[date, MonthState]:
    """Create the months (and their key partitions) not created yet; every month's state.

    Each month in its own short transaction (the caller must not be in one): creating a
    partition must not wait for, or hold up, the batches of other months.
    """
    states = {}
    for month in sorted(set(months)):
        states[month] = MonthState(await conn.fetchval("SELECT ensure_month($1)", month))
    return states


async def archived_months(conn: Connection) -> frozenset[date]:
    """Every archived month."""
    rows = await conn.fetch("SELECT month FROM months WHERE state = 'archived'")
    return frozenset(r["month"] for r in rows)


def archived_cache(pool: asyncpg.Pool, zone: tzinfo, refresh_s: float) -> LiveValue[ArchivedMonths]:
    """The archived months, reloaded when a month is archived (NOTIFY) and every `refresh_s`."""

    async def load(conn: Connection) -> ArchivedMonths:
        return ArchivedMonths.of(await archived_months(conn), zone)

    return LiveValue("archived-months", pool, load, MONTHS_CHANNEL, ArchivedMonths.of((), zone), refresh_s)


async def list_months(conn: Connection) -> list[Month]:
    """Every month the platform has counted events in, oldest first."""
    return [_month(r) for r in await conn.fetch(f"SELECT {_COLUMNS} FROM months ORDER BY month")]


async def close_month(conn: Connection, month: date, at: datetime | None = None) -> Month:
    """Close an open month: record its cutoff (`at`, default now) and freeze every report of it.

    The one place where a month becomes closed. In the transaction that changes the state, every
    report of `REPORTS` is written to `month_snapshots` as the admin sees it (`org_scope` '') and
    as each institution of the reference set in force sees its own (`org_scope` its org_code),
    so `as_of=closed` answers every reader what was published.

    One repeatable-read transaction: the reports are read from its snapshot, taken by its first
    query, at the cutoff; batches go on meanwhile (what they apply is after the cutoff, a
    restatement). Only then is the month's row updated, which waits for the batches of the month
    being applied (they hold the row FOR SHARE) and holds new ones back for the few
    milliseconds of the inserts. Two closes at once: the second is refused (MonthStateError).
    """
    try:
        async with conn.transaction(isolation="repeatable_read"):
            found = await month_of(conn, month)
            if found is None:
                raise MonthNotFoundError(f"no event has counted in {month:%Y-%m}")
            if found.state is not MonthState.OPEN:
                raise MonthStateError(f"{month:%Y-%m} is {found.state}: only an open month can be closed")
            frozen = await _frozen_reports(conn, month)
            row = await conn.fetchrow(
                f"""UPDATE months SET state = 'closed', closed_at = coalesce($2, now()), cutoff = coalesce($2, now())
                    WHERE month = $1 AND state = 'open' RETURNING {_COLUMNS}""",
                month,
                at,
            )
            if row is None:
                raise MonthStateError(f"{month:%Y-%m} was closed meanwhile")
            await conn.executemany(
                "INSERT INTO month_snapshots (month, report, org_scope, body) VALUES ($1, $2, $3, $4::json)", frozen
            )
            await conn.execute(f"NOTIFY {MONTHS_CHANNEL}")
    except asyncpg.SerializationError as exc:
        # Another close (or an archive) changed the row after this transaction's snapshot.
        raise MonthStateError(f"{month:%Y-%m} was closed meanwhile") from exc
    return _month(row)


async def _frozen_reports(conn: Connection, month: date) -> list[tuple[date, str, str, str]]:
    orgs = [r["org_code"] for r in await conn.fetch("SELECT org_code FROM cur_institutions ORDER BY org_code")]
    rows = []
    for scope in (None, *orgs):
        for name, body in (await read_all(conn, month, scope)).items():
            rows.append((month, name, scope or ALL_INSTITUTIONS, orjson.dumps(body).decode()))
    return rows


ALL_INSTITUTIONS = ""
"""`month_snapshots.org_scope` of the admin's view (every institution)."""


async def month_of(conn: Connection, month: date) -> Month | None:
    """The `months` row of `month`, or None when no event has counted in it."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM months WHERE month = $1", month)
    return None if row is None else _month(row)


async def frozen_report(conn: Connection, month: date, report: str, org_code: str | None) -> tuple[Month, Any]:
    """A closed (or archived) month's report as frozen at its close, for the admin (None) or one institution.

    MonthNotFoundError: no event counted in the month; MonthStateError: the month is open;
    SnapshotNotFoundError: the reader had no view at the close (an institution added since).
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        found = await month_of(conn, month)
        if found is None:
            raise MonthNotFoundError(f"no event has counted in {month:%Y-%m}, and it was never closed")
        if found.state is MonthState.OPEN:
            raise MonthStateError(f"{month:%Y-%m} is open: as_of=closed needs a closed month")
        body = await conn.fetchval(
            "SELECT body::text FROM month_snapshots WHERE month = $1 AND report = $2 AND org_scope = $3",
            month,
            report,
            org_code or ALL_INSTITUTIONS,
        )
    if body is None:
        raise SnapshotNotFoundError(
            f"no frozen {report} report of {month:%Y-%m} for {org_code or 'every institution'}: a month is frozen "
            "for the institutions of the reference data at its close, and the uploads reports for districts "
            "and hospitals only"
        )
    return found, orjson.loads(body)


async def closed_months(conn: Connection) -> list[Month]:
    """The months closed and not archived, oldest first."""
    return [_month(r) for r in await conn.fetch(f"SELECT {_COLUMNS} FROM months WHERE state = 'closed' ORDER BY month")]


async def archive_month(conn: Connection, month: date) -> Month:
    """Archive a closed month now: its keys are dropped with their partition, its events refused.

    One transaction: the state changes and the partition goes together. It waits for the
    batches being applied (DROP takes the key store's table lock), and a batch that starts
    after it sees the month archived (apply_batch locks the month's row FOR SHARE first).
    """
    async with conn.transaction():
        state = await conn.fetchval("SELECT state FROM months WHERE month = $1 FOR UPDATE", month)
        if state is None:
            raise MonthNotFoundError(f"no event has counted in {month:%Y-%m}")
        if state != MonthState.CLOSED:
            raise MonthStateError(f"{month:%Y-%m} is {state}: only a closed month can be archived")
        row = await conn.fetchrow(
            f"UPDATE months SET state = 'archived', archived_at = now() WHERE month = $1 RETURNING {_COLUMNS}",
            month,
        )
        await conn.execute(f"DROP TABLE IF EXISTS {key_partition(month)}")
        await conn.execute(f"NOTIFY {MONTHS_CHANNEL}")
    assert row is not None
    return _month(row)


async def archive_due(conn: Connection, horizon: timedelta, now: datetime) -> list[date]:
    """Archive every month closed longer than `horizon` before `now`; the months archived."""
    due = await conn.fetch(
        "SELECT month FROM months WHERE state = 'closed' AND closed_at <= $1 ORDER BY month", now - horizon
    )
    done = []
    for row in due:
        try:
            await archive_month(conn, row["month"])
        except MonthStateError:
            continue  # archived meanwhile by an admin or another aggregator
        done.append(row["month"])
    return done
