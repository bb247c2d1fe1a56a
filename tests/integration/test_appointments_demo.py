"""The demo month's bookings reproduce both printed appointment tables and the bookings to date.

The 357,428 bookings of the April 2020 demo (duplicates, the month's edges and relays on other
clocks included) go through the aggregator's own write path (`store.apply_batch`, validated
with the contract model first, as the consumer does) into a database of this test; the report
and the bulletin section are then compared with the printed cells (services/demo/expected.py,
read from the bulletin's CSV files, never from the platform's code).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from services.aggregator.store import Batch, apply_batch, check_time_zone
from services.bulletin.query import load_bulletin_data
from services.bulletin.render import render_html
from services.demo.expected import compare_appointment_report, expected_appointments
from services.demo.stream import plan_demo_month
from services.storage.reference import read_reference_folder, replace_reference
from services.streams import STREAMS, ConsumedEvent
from services.streams.appointments.report import appointments_report
from tests.fixtures.stack import REPO
from tests.unit.bulletin.page import parse, problems, table_rows

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
APRIL = date(2020, 4, 1)
BATCH = 20_000


async def test_the_demo_months_bookings_reproduce_the_printed_tables(db: asyncpg.Connection) -> None:
    await check_time_zone(db, "Asia/Shanghai")
    await replace_reference(db, read_reference_folder(REPO / "services/demo/data/reference-2020-04"), "test")
    month = plan_demo_month()
    stream = STREAMS["appointment"]
    applied = 0

    async def apply(raw: list[Any]) -> None:
        nonlocal applied
        events, invalid = stream.validate(raw)
        assert invalid == []
        consumed = [ConsumedEvent(e, stream.moment(e), 0, applied + n) for n, e in enumerate(events)]
        applied += len(events)
        await apply_batch(db, "demo", "demo.events", Batch(consumed, {0: applied}), SHANGHAI)

    pending: list[Any] = []
    for _, event in month.events(("appointment",)):
        pending.append(event)
        if len(pending) == BATCH:
            await apply(pending)
            pending = []
    await apply(pending)
    assert applied == month.appointments.total_events

    report = await appointments_report(db, APRIL, None)
    assert compare_appointment_report(expected_appointments(), report.model_dump(mode="json")) == []
    assert report.appointments_cumulative == 19_238_954
    assert (report.total.subtotal, report.platforms_total) == (356_355, 98_432)

    # The bulletin's section shows the same, and the demo month has nothing to flag in it: the
    # platform table adds up to less than online + third party, which is how it was printed.
    data = await load_bulletin_data(db, APRIL, None)
    page = parse(
        render_html(data, now=datetime(2020, 5, 19, tzinfo=SHANGHAI), zone=SHANGHAI, conformance_threshold=0.95)
    )
    rows = table_rows(page, "appointments-by-institution")
    assert len(rows) == 37 and rows[-1].cells == ["79,337", "81,506", "128,521", "66,991", "356,355"]
    assert rows[0].cells[1:] == ["南京市儿童医院", "7,220", "44,374", "94,274", "31,087", "176,955"]
    assert "总预约挂号量为19,238,954次" in page.by_id("appointments-to-date").text()
    assert table_rows(page, "appointment-platforms-table")[-1].cells == ["98,432"]
    assert not [check for found in problems(page).values() for check, _, _ in found if check.startswith("bookings")]
