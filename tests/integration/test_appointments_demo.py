"""The demo month's bookings reproduce both printed appointment tables and the bookings to date.

The session's demo database (tests/fixtures/demo.py) holds the April 2020 demo month applied
through the aggregator's own write path, its 357,428 bookings (duplicates, the month's edges
and relays on other clocks included) among them. The report and the bulletin section are
compared with the printed cells (services/demo/expected.py, read from the bulletin's CSV
files, never from the platform's code).
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from services.bulletin.render import render_html
from services.demo.expected import compare_appointment_report, expected_appointments
from services.quality.month import load_quality_month
from services.streams.appointments.report import appointments_report
from tests.fixtures.demo import DEMO_KINDS
from tests.unit.bulletin.page import parse, problems, table_rows

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
APRIL = date(2020, 4, 1)


async def test_the_demo_months_bookings_reproduce_the_printed_tables(demo_db: asyncpg.Connection) -> None:
    assert "appointment" in DEMO_KINDS
    # Every distinct booking of the stream is stored once: the 1,069 resent ones are not.
    assert await demo_db.fetchval("SELECT count(*) FROM appointment_events") == 357_428 - 1_069

    report = await appointments_report(demo_db, APRIL, None)
    assert compare_appointment_report(expected_appointments(), report.model_dump(mode="json")) == []
    assert report.appointments_cumulative == 19_238_954
    assert (report.total.subtotal, report.platforms_total) == (356_355, 98_432)

    # The bulletin's section shows the same, and the demo month has nothing to flag in it: the
    # platform table adds up to less than online + third party, which is how it was printed.
    data = await load_quality_month(demo_db, APRIL, None)
    now = datetime(2020, 5, 19, tzinfo=SHANGHAI)
    page = parse(render_html(data, now=now, zone=SHANGHAI, conformance_threshold=0.95))
    rows = table_rows(page, "appointments-by-institution")
    assert len(rows) == 37 and rows[-1].cells == ["79,337", "81,506", "128,521", "66,991", "356,355"]
    assert rows[0].cells[1:] == ["南京市儿童医院", "7,220", "44,374", "94,274", "31,087", "176,955"]
    assert "总预约挂号量为19,238,954次" in page.by_id("appointments-to-date").text()
    assert table_rows(page, "appointment-platforms-table")[-1].cells == ["98,432"]
    assert not [check for found in problems(page).values() for check, _, _ in found if check.startswith("bookings")]
