"""Figures as they stood at a time: the rollups recomputed from the raw events received by then.

`rollups_as_of(conn, at, zone)` opens a transaction in which every rollup table's name resolves
to a temporary table with the same columns and keys, filled by folding, through each stream's
own `fold` (as `rebuild-rollups` does), every raw row whose `received_at` (the collector's) is at
or before `at`, whatever month it counts in: an upload of May may carry an April business date
(conformance), and cumulative figures read the months before. Inside it every report function,
and the bulletin, runs unchanged and answers from those events only; the temporary tables go
with the transaction. So a figure `as_of` a time is computed by the same code as the live one.

Cost: one pass over every raw row received by `at` (the raw tables have no index on
`received_at`), the price of correctness for a question asked rarely.

The search path is set for the transaction, pg_temp first, rather than leaving temporary tables
to shadow the real ones implicitly: PostgreSQL plans a prepared statement again when the search
path changes, not when a new table would shadow the one it was planned on, and asyncpg keeps
each pooled connection's statements prepared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, tzinfo

from services.aggregator.rebuild import fold_raw_tables
from services.reports.catalog import Body, Report
from services.storage.connection import Connection
from services.storage.months import frozen_report
from services.streams import STREAMS


@asynccontextmanager
async def rollups_as_of(conn: Connection, at: datetime, zone: tzinfo) -> AsyncIterator[int]:
    """Inside: the rollups of the events received by `at`; yields how many events were folded.

    The transaction is repeatable read, so the report functions' own repeatable-read blocks nest
    in it (as savepoints) and the raw rows, the reference data and the reports agree.
    """
    async with conn.transaction(isolation="repeatable_read"):
        for table in STREAMS.rollup_tables:
            real = await conn.fetchval("SELECT to_regclass($1)::oid", table.name)
            source = await conn.fetchval(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                real,
            )
            await conn.execute(
                f"CREATE TEMPORARY TABLE {table.name} (LIKE {source} INCLUDING DEFAULTS INCLUDING INDEXES) "
                "ON COMMIT DROP"
            )
        await conn.execute("SELECT set_config('search_path', 'pg_temp, ' || current_setting('search_path'), true)")
        yield await fold_raw_tables(conn, zone, received_by=at)


async def read_report(
    conn: Connection, report: Report, month: date, org_code: str | None, when: str | datetime | None, zone: tzinfo
) -> Body:
    """A report's body for one reader: live (`when` None), frozen at the close (`closed`), or as of a time.

    Raises what `frozen_report` raises for `closed`; the routes and the command line map it.
    """
    if when is None:
        return await report.read(conn, month, org_code)
    if isinstance(when, datetime):
        async with rollups_as_of(conn, when, zone):
            return await report.read(conn, month, org_code)
    _, body = await frozen_report(conn, month, report.name, org_code)
    return body
