"""apply_batch writes every raw value exactly as validated (text COPY round trip through PostgreSQL)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from services.aggregator.store import ApplyResult, Batch, apply_batch, check_time_zone
from services.streams import ConsumedEvent
from services.streams.kiosk.model import KioskTransaction
from services.streams.uploads.model import UploadEvent
from tests.fixtures.events import kiosk, upload

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")


async def test_raw_rows_keep_instants_amounts_and_origins_exactly(db: asyncpg.Connection) -> None:
    await check_time_zone(db, "Asia/Shanghai")
    received = datetime.fromisoformat("2020-04-02T00:00:00.000001-23:59")
    events = [
        ConsumedEvent(
            KioskTransaction.model_validate(
                kiosk(event_id="k1", amount="999999999999.99", occurred_at="2020-04-01T08:30:00.123456+23:59")
            ),
            received,
            4,
            70,
        ),
        ConsumedEvent(
            KioskTransaction.model_validate(kiosk(event_id="k2", amount="0", occurred_at="2020-04-01T00:00:00Z")),
            received,
            4,
            71,
        ),
        ConsumedEvent(
            UploadEvent.model_validate(
                upload(event_id="u1", uploaded_at="2020-04-01T23:59:59.999999-16:00", business_date="2020-02-29")
            ),
            received,
            5,
            9,
        ),
    ]
    result = await apply_batch(db, "g", "t", Batch(events, {4: 72, 5: 10}), SHANGHAI)
    assert result == ApplyResult({"upload": 1, "kiosk": 2}, 0, 0)
    kiosk_rows = await db.fetch(
        """SELECT event_id, occurred_at, amount, kind, received_at, kafka_partition, kafka_offset
           FROM kiosk_transactions ORDER BY event_id"""
    )
    for row, consumed in zip(kiosk_rows, events[:2], strict=True):
        event = consumed.event
        assert isinstance(event, KioskTransaction)
        assert row["event_id"] == event.event_id
        assert row["occurred_at"] == event.occurred_at
        assert row["amount"] == event.amount
        assert row["kind"] == event.kind.value
        assert (row["received_at"], row["kafka_partition"], row["kafka_offset"]) == (received, 4, consumed.offset)
    assert kiosk_rows[0]["amount"] == Decimal("999999999999.99")
    upload_row = await db.fetchrow("SELECT * FROM upload_events")
    event = events[2].event
    assert isinstance(event, UploadEvent)
    assert upload_row is not None
    assert (upload_row["uploaded_at"], upload_row["business_date"]) == (event.uploaded_at, event.business_date)
    assert (upload_row["record_count"], upload_row["document_count"], upload_row["mode"]) == (
        event.record_count,
        event.document_count,
        event.mode.value,
    )
    assert (upload_row["kafka_partition"], upload_row["kafka_offset"]) == (5, 9)
