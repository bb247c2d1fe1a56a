"""What a closed month costs: closing the demo month, its snapshots, `as_of` and restatements.

    .venv/bin/python -m bench.close_month

In a scratch database `bench_close_month_<tag>` (dropped afterwards): the demo reference set and
the whole April 2020 stream applied through the aggregator's write path (the test suite's demo
fixture, `tests/fixtures/demo.py`), then it times `close_month` (every report for the admin and
for each of the 306 institutions) and reports the snapshots' rows and bytes, one report live and
`as_of` a time (every raw event folded again), and the month's restatements.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from bench.stack import Isolation, create_database, drop_database
from services.aggregator.asof import rollups_as_of
from services.demo.month import PLATFORM_TZ
from services.reports.catalog import REPORTS
from services.reports.restatements import restatements
from services.storage.months import close_month
from tests.fixtures.demo import load_demo_month

APRIL = date(2020, 4, 1)


async def _timed(label: str, action: Any) -> Any:
    started = time.perf_counter()
    result = await action
    print(f"{label:<58} {time.perf_counter() - started:8.2f} s")
    return result


async def main() -> None:
    """Run the measurements and print them."""
    iso = Isolation.new("close-month")
    await create_database(iso)  # migrated, with the demo reference set
    conn = await asyncpg.connect(iso.database_url)
    zone = ZoneInfo(PLATFORM_TZ)
    try:
        events = await _timed("load the demo month (apply_batch)", load_demo_month(conn))
        await conn.execute("ANALYZE")
        print(f"{'events applied':<58} {events:>10,}")
        closed = await _timed("close_month: cutoff + every report, every reader", close_month(conn, APRIL))
        rows, size = await conn.fetchrow(
            "SELECT count(*), pg_total_relation_size('month_snapshots') FROM month_snapshots WHERE month = $1", APRIL
        )
        print(f"{'snapshot rows / bytes':<58} {rows:>10,} / {size:,}")
        read = REPORTS["uploads-district"].read
        await _timed("uploads-district, live (rollups)", read(conn, APRIL, None))

        async def as_of() -> None:
            async with rollups_as_of(conn, closed.cutoff, zone) as folded:
                print(f"{'events folded for as_of':<58} {folded:>10,}")
                await read(conn, APRIL, None)

        await _timed("uploads-district, as_of the cutoff (raw events folded)", as_of())

        async def restated() -> int:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return len((await restatements(conn, closed, zone)).cells)

        cells = await _timed("restatements of the month (admin)", restated())
        print(f"{'restated cells (none expected)':<58} {cells:>10,}")
    finally:
        await conn.close()
        await drop_database(iso)


if __name__ == "__main__":
    asyncio.run(main())
