"""The demo month's data-quality checks find the seed's own problems, as the printed bulletin has them.

The session's demo database (tests/fixtures/demo.py) holds the April 2020 demo month. The
figures the checks must find are read from the printed bulletin's tables (services/demo/data/
bulletin-2020-04, transcribed as printed), never from the platform's code: 南京市口腔医院's
registration amount without registrations (in the table as printed: a month of events cannot have
one), 秦淮区 and 高淳区's identical health records, and the
hotline's phone appointments against the appointments table's phone column (which agree).
"""

from __future__ import annotations

import csv
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from services.demo.bulletin import BULLETIN_DIR, check_bulletin, load_bulletin
from services.quality.report import quality_report
from services.quality.settings import Thresholds
from services.streams.kiosk.report import kiosks_report
from tests.fixtures.demo import DEMO_REFERENCE

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
APRIL = date(2020, 4, 1)
AFTER_APRIL = datetime(2020, 5, 19, 9, 0, tzinfo=SHANGHAI)


def _printed(name: str) -> list[dict[str, str]]:
    with (BULLETIN_DIR / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _org_codes(folder: Path) -> dict[str, str]:
    with (folder / "institutions.csv").open(encoding="utf-8", newline="") as handle:
        return {row["name"]: row["org_code"] for row in csv.DictReader(handle)}


async def test_the_demo_month_finds_the_seeds_own_problems(demo_db: asyncpg.Connection) -> None:
    report = await quality_report(demo_db, APRIL, None, zone=SHANGHAI, thresholds=Thresholds(), now=AFTER_APRIL)
    rows = {(r.org_code, r.check): r for r in report.rows}
    codes = _org_codes(DEMO_REFERENCE)

    # Kiosk amounts without a transaction, as printed: 南京市口腔医院, 0 registrations, 80,573.00 CNY.
    printed = [
        (r["unit"], Decimal(r["registration_amount_cny"]))
        for r in _printed("kiosk_usage_2020-04.csv")
        if r["group"] != "total" and int(r["registrations"]) == 0 and Decimal(r["registration_amount_cny"]) > 0
    ]
    assert [unit for unit, _ in printed] == ["南京市口腔医院"]
    # The checks find it in the table as printed (check_bulletin runs them on the printed rows) ...
    on_paper = [f for f in check_bulletin(load_bulletin()) if f.what.startswith("amount_without_count")]
    assert [(f.unit, f.what) for f in on_paper] == [
        (unit, f"amount_without_count: 挂号 0 次，挂号金额 {amount:,.2f} 元") for unit, amount in printed
    ]
    # ... and cannot in the demo month: every transaction event carries its own amount, so a
    # month of events has no amount without transactions (the demo's documented deviation: 0, 0.00).
    assert not [r for r in report.rows if r.check == "amount_without_count"]
    kiosk = next(r for r in await kiosks_report(demo_db, APRIL, None) if r.org_code == codes["南京市口腔医院"])
    assert (kiosk.registrations, kiosk.registration_amount) == (0, Decimal("0.00"))

    # Identical cumulative health records, as printed: 秦淮区 and 高淳区.
    districts = _printed("district_uploads_2020-04.csv")
    ehr = ("ehr_basic_cumulative", "ehr_hypertension_cumulative", "ehr_diabetes_cumulative")
    by_triple: dict[tuple[str, ...], list[str]] = {}
    for r in districts:
        by_triple.setdefault(tuple(r[f] for f in ehr), []).append(r["unit"])
    twins = [units for units in by_triple.values() if len(units) > 1]
    assert [sorted(t) for t in twins] == [sorted(["秦淮区", "高淳区"])]
    assert {org for org, check in rows if check == "identical_figures"} == {codes[u] for u in twins[0]}
    for unit in twins[0]:
        finding = rows[(codes[unit], "identical_figures")]
        printed_row = next(r for r in districts if r["unit"] == unit)
        assert {f: finding.figures["fields"][f] for f in ehr} == {f: int(printed_row[f]) for f in ehr}
        assert finding.figures["same_as"] == [codes[u] for u in twins[0] if u != unit]

    # The hotline's phone appointments against the appointments table's phone column: they agree.
    hotline = {r["figure"]: int(r["value"]) for r in _printed("hotline_2020-04.csv")}
    appointments = _printed("appointments_2020-04.csv")
    phone_total = next(int(r["phone"]) for r in appointments if r["unit"] == "合计")
    assert hotline["appointment"] == phone_total == 81_506
    [nanjing] = [c for c in report.cross_stream if c.org_code == codes["南京12320"]]
    assert (nanjing.appointment_calls, nanjing.phone_bookings, nanjing.agrees) == (81_506, phone_total, True)
    assert not [r for r in report.rows if r.check == "cross_stream_mismatch"]
