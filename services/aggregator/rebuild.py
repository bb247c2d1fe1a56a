"""Rebuild every rollup from the raw events, through the same fold as the live path.

Used after a change of a metric's definition (a new rollup is backfilled this way) and to
check that the live path and a full recomputation agree. Runs in one transaction that
locks the rollups against writers (not readers), so the live consumer waits and reports
keep reading the old figures until the new ones are committed.
"""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from services.aggregator.rollups import RollupDeltas
from services.aggregator.store import apply_deltas
from services.contract.models import KioskKind, KioskTransaction, Mode, UploadEvent
from services.storage.connection import Connection

ROLLUP_TABLES = ("upload_daily", "upload_monthly_tables", "conformance_daily", "kiosk_monthly", "channel_last_seen")
CHUNK = 50_000

Progress = Callable[[int], None]


async def rebuild_rollups(conn: Connection, zone_name: str, progress: Progress | None = None) -> int:
    """Recompute the rollups from `upload_events` and `kiosk_transactions`; return events folded.

    The rollups are rebuilt in `zone_name`, which becomes the zone recorded for them (this is
    how the platform time zone is changed).
    """
    zone = ZoneInfo(zone_name)
    done = 0
    async with conn.transaction():
        await conn.execute(f"LOCK TABLE {', '.join(ROLLUP_TABLES)}, rollup_settings IN EXCLUSIVE MODE")
        # DELETE, not TRUNCATE: TRUNCATE would lock out the readers too.
        for table in ROLLUP_TABLES:
            await conn.execute(f"DELETE FROM {table}")
        await conn.execute(
            """INSERT INTO rollup_settings (singleton, time_zone) VALUES (true, $1)
               ON CONFLICT (singleton) DO UPDATE SET time_zone = excluded.time_zone""",
            zone_name,
        )
        uploads = conn.cursor(
            """SELECT event_id, org_code, table_code, mode, business_date, uploaded_at, record_count,
                      document_count, received_at FROM upload_events"""
        )
        deltas = RollupDeltas()
        async for row in uploads:
            # model_construct: these rows were validated before they were stored.
            event = UploadEvent.model_construct(
                event_id=row["event_id"],
                org_code=row["org_code"],
                table_code=row["table_code"],
                mode=Mode(row["mode"]),
                business_date=row["business_date"],
                uploaded_at=row["uploaded_at"],
                record_count=row["record_count"],
                document_count=row["document_count"],
            )
            deltas.fold_upload(event, zone, row["received_at"])
            done += 1
            if done % CHUNK == 0:
                deltas = await _flush(conn, deltas, done, progress)
        kiosk = conn.cursor("SELECT event_id, org_code, kiosk_id, kind, amount, occurred_at FROM kiosk_transactions")
        async for row in kiosk:
            transaction = KioskTransaction.model_construct(
                event_id=row["event_id"],
                org_code=row["org_code"],
                kiosk_id=row["kiosk_id"],
                kind=KioskKind(row["kind"]),
                amount=row["amount"],
                occurred_at=row["occurred_at"],
            )
            deltas.fold_kiosk(transaction, zone)
            done += 1
            if done % CHUNK == 0:
                deltas = await _flush(conn, deltas, done, progress)
        await _flush(conn, deltas, done, progress)
    return done


async def _flush(conn: Connection, deltas: RollupDeltas, done: int, progress: Progress | None) -> RollupDeltas:
    await apply_deltas(conn, deltas)
    if progress is not None:
        progress(done)
    return RollupDeltas()


async def raw_event_count(conn: Connection) -> int:
    """Events a rebuild will fold (for a progress bar's total)."""
    uploads = await conn.fetchval("SELECT count(*) FROM upload_events")
    kiosk = await conn.fetchval("SELECT count(*) FROM kiosk_transactions")
    return int(uploads) + int(kiosk)
