"""The restatement gauges: per closed month, the cells changed since its close and the late events.

A background task recomputes them every `restatements_refresh_s` from the same code as
`GET /v1/reports/restatements` (the admin's view; the late events from the month's key-store
partition rather than the raw rows, which costs a scan of narrow rows per closed month and
refresh), for every closed month not yet archived
(archived months refuse their events, so they cannot change any more). The alert
ClosedMonthRestated fires when either changes (deploy/prometheus/rules/data-quality.yml).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import tzinfo
from typing import TYPE_CHECKING

import asyncpg

from services.reports.restatements import late_events, restatements
from services.storage.connection import Connection
from services.storage.errors import SnapshotNotFoundError
from services.storage.months import closed_months

if TYPE_CHECKING:
    from services.aggregator.metrics import AggregatorMetrics

log = logging.getLogger(__name__)


async def read_restated(conn: Connection, zone: tzinfo) -> dict[str, tuple[int, int]]:
    """Per closed month (`YYYY-MM`): (changed cells, events received after the cutoff)."""
    out = {}
    for month in await closed_months(conn):
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                found = await restatements(conn, month, zone, count_late=False)
                late = await late_events(conn, month)
        except SnapshotNotFoundError:
            continue  # closed before snapshots were kept: nothing to compare with
        out[f"{month.month:%Y-%m}"] = (len(found.cells), late)
    return out


class RestatementMonitor:
    """Refreshes the restatement gauges in the background; started and stopped by the app's lifespan."""

    def __init__(self, pool: asyncpg.Pool, metrics: AggregatorMetrics, zone: tzinfo, refresh_s: float) -> None:
        self._pool = pool
        self._metrics = metrics
        self._zone = zone
        self._refresh_s = refresh_s
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> dict[str, tuple[int, int]]:
        """Recompute and export the gauges; database errors propagate to the caller."""
        async with self._pool.acquire() as conn:
            found = await read_restated(conn, self._zone)
        # Computed first, swapped in without an await: a month archived meanwhile loses its series.
        self._metrics.restated_cells.clear()
        self._metrics.closed_month_late_events.clear()
        for month, (cells, late) in found.items():
            self._metrics.restated_cells.labels(month=month).set(cells)
            self._metrics.closed_month_late_events.labels(month=month).set(late)
        return found

    async def start(self) -> None:
        """Refresh in the background, first right away."""
        self._task = asyncio.create_task(self._run(), name="restatements-refresh")

    async def stop(self) -> None:
        """Stop refreshing."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self._metrics.restatements_refresh_errors.labels(error_type=type(exc).__name__).inc()
                log.warning("restatements refresh failed; will retry", extra={"error": repr(exc)})
            await asyncio.sleep(self._refresh_s)
