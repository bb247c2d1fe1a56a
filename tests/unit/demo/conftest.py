"""Shared fixtures of the demo tests: the generated month, summarised once per session.

`summarise` is an implementation of the contract's metric definitions written for the
tests only, as plainly as possible and without any code of `services.demo.month`: it
reads the committed reference CSV files and the stream as a platform would receive it.
Besides the metrics it counts the stream's awkward parts (duplicates, midnight, late
and out-of-order events, offsets) so that tests can assert they are really there.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.demo.month import MonthPlan, StreamItem, plan_month

SHANGHAI = ZoneInfo("Asia/Shanghai")
EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MINUTE_AFTER = time(0, 1)
MINUTE_BEFORE = time(23, 59)
APRIL = (date(2020, 4, 1), date(2020, 4, 30))
REFERENCE_DIR = Path(__file__).resolve().parents[3] / "services" / "demo" / "data" / "reference-2020-04"


def read_csv(name: str) -> list[dict[str, str]]:
    """Rows of one committed reference CSV file."""
    with (REFERENCE_DIR / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@dataclass
class UploadFigures:
    """One institution's April upload metrics, as the contract defines them."""

    records: int = 0
    documents: int = 0
    days: set[date] = field(default_factory=set)
    all_days: set[date] = field(default_factory=set)
    """Days with records in the whole stream, April or not (for the missing-uploads alert)."""
    tables: set[str] = field(default_factory=set)
    outpatient: int = 0
    discharges: int = 0
    cumulative: Counter[str] = field(default_factory=Counter)
    pairs: dict[tuple[str, date], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    def conformance(self) -> Fraction | None:
        """Σ min(R, S) / Σ max(R, S) over (table, business_date) pairs with max > 0."""
        low = sum(min(r, s) for r, s in self.pairs.values() if max(r, s) > 0)
        high = sum(max(r, s) for r, s in self.pairs.values() if max(r, s) > 0)
        return Fraction(low, high) if high else None


@dataclass
class KioskFigures:
    """One institution's April kiosk metrics."""

    registrations: int = 0
    registration_amount: Decimal = Decimal("0.00")
    payments: int = 0
    payment_amount: Decimal = Decimal("0.00")


@dataclass
class StreamSummary:
    """The metrics of the month and counts of what makes the stream realistic."""

    uploads: dict[str, UploadFigures]
    kiosks: dict[str, KioskFigures]
    events: Counter[str] = field(default_factory=Counter)
    """Events received, by kind, duplicates included."""
    duplicates: Counter[str] = field(default_factory=Counter)
    duplicates_in_later_batch: int = 0
    differing_duplicates: int = 0
    modes: Counter[str] = field(default_factory=Counter)
    liveness: int = 0
    near_midnight: Counter[str] = field(default_factory=Counter)
    """'upload before', 'upload after', 'kiosk before', 'kiosk after' midnight (within 60 s)."""
    offsets: Counter[str] = field(default_factory=Counter)
    out_of_order: Counter[str] = field(default_factory=Counter)
    arrived_days_late: Counter[str] = field(default_factory=Counter)
    realtime_uploaded_days_after_business_date: int = 0
    batch_march_31_in_april: int = 0
    batch_april_30_in_may: int = 0
    kiosk_outside_april: int = 0
    shared_event_ids: int = 0
    utc_records: Counter[str] = field(default_factory=Counter)
    """records_uploaded if days were taken from the UTC date (the wrong reading)."""
    text_date_records: Counter[str] = field(default_factory=Counter)
    """records_uploaded if days were taken from the timestamp's text (the wrong reading)."""
    utc_kiosk_transactions: Counter[str] = field(default_factory=Counter)
    """April kiosk transactions if days were taken from the UTC date (the wrong reading)."""
    bad_event_ids: int = 0


def _in_april(day: date) -> bool:
    return APRIL[0] <= day <= APRIL[1]


def summarise(stream: Iterable[StreamItem]) -> StreamSummary:
    """Apply the contract's definitions to a stream of (kind, event) pairs."""
    category = {row["table_code"]: row["category"] for row in read_csv("tables.csv")}
    summary = StreamSummary(uploads=defaultdict(UploadFigures), kiosks=defaultdict(KioskFigures))
    seen: dict[int, tuple[int, int]] = {}  # hash of (org, event_id) -> (hash of event, position)
    upload_ids: dict[str, set[str]] = defaultdict(set)
    latest: dict[str, datetime] = {}
    previous: dict[str, datetime] = {}
    for position, (kind, event) in enumerate(stream):
        summary.events[kind] += 1
        stamp = str(event["uploaded_at"] if kind == "upload" else event["occurred_at"])  # type: ignore[typeddict-item]
        moment = datetime.fromisoformat(stamp)
        local = moment.astimezone(SHANGHAI)
        summary.offsets[stamp[19:]] += 1
        if kind in previous and moment < previous[kind]:
            summary.out_of_order[kind] += 1
        previous[kind] = moment
        if kind in latest and moment < latest[kind] - timedelta(days=1):
            summary.arrived_days_late[kind] += 1
        elif kind not in latest or moment > latest[kind]:
            latest[kind] = moment
        key = hash((event["org_code"], event["event_id"]))
        content = hash(tuple(event.items()))
        if key in seen:
            summary.duplicates[kind] += 1
            first_content, first_position = seen[key]
            summary.differing_duplicates += first_content != content
            summary.duplicates_in_later_batch += position - first_position > 1_000
            continue
        seen[key] = (content, position)
        if not EVENT_ID.fullmatch(event["event_id"]):
            summary.bad_event_ids += 1
        clock = local.time()
        if clock < MINUTE_AFTER:
            summary.near_midnight[f"{kind} after"] += 1
        elif clock >= MINUTE_BEFORE:
            summary.near_midnight[f"{kind} before"] += 1
        if kind == "upload":
            _add_upload(summary, event, local.date(), moment, stamp, category)  # type: ignore[arg-type]
            upload_ids[event["event_id"]].add(event["org_code"])
        else:
            _add_kiosk(summary, event, local.date(), moment)  # type: ignore[arg-type]
    summary.shared_event_ids = sum(1 for orgs in upload_ids.values() if len(orgs) > 1)
    return summary


def _add_upload(
    summary: StreamSummary, event: dict[str, object], day: date, moment: datetime, stamp: str, category: dict[str, str]
) -> None:
    org = str(event["org_code"])
    table = str(event["table_code"])
    mode = str(event["mode"])
    business = date.fromisoformat(str(event["business_date"]))
    records = int(str(event["record_count"]))
    documents = int(str(event.get("document_count", 0)))
    summary.modes[mode] += 1
    if mode == "realtime" and (day - business).days >= 2:
        summary.realtime_uploaded_days_after_business_date += 1
    if mode == "scheduled" and business == date(2020, 3, 31) and _in_april(day):
        summary.batch_march_31_in_april += 1
    if mode == "scheduled" and business == date(2020, 4, 30) and day == date(2020, 5, 1):
        summary.batch_april_30_in_may += 1
    if records == 0:
        summary.liveness += 1
        return
    figures = summary.uploads[org]
    figures.all_days.add(day)
    if _in_april(day):
        figures.records += records
        figures.documents += documents
        figures.days.add(day)
        figures.tables.add(table)
        if category[table] == "outpatient_visit":
            figures.outpatient += records
        if category[table] == "discharge":
            figures.discharges += records
    if day <= APRIL[1] and category[table].startswith("ehr_"):
        figures.cumulative[category[table]] += records
    if _in_april(business):
        figures.pairs[(table, business)][mode == "scheduled"] += records
    if _in_april(moment.astimezone(UTC).date()):
        summary.utc_records[org] += records
    if _in_april(date.fromisoformat(stamp[:10])):
        summary.text_date_records[org] += records


def _add_kiosk(summary: StreamSummary, event: dict[str, object], day: date, moment: datetime) -> None:
    org = str(event["org_code"])
    amount = Decimal(str(event["amount"]))
    if _in_april(moment.astimezone(UTC).date()):
        summary.utc_kiosk_transactions[org] += 1
    if not _in_april(day):
        summary.kiosk_outside_april += 1
        return
    figures = summary.kiosks[org]
    if event["kind"] == "registration":
        figures.registrations += 1
        figures.registration_amount += amount
    else:
        figures.payments += 1
        figures.payment_amount += amount


@pytest.fixture(name="read_csv", scope="session")
def read_csv_fixture() -> Callable[[str], list[dict[str, str]]]:
    """`read_csv(name)`: rows of a committed reference CSV file."""
    return read_csv


@pytest.fixture(scope="session")
def month_plan() -> MonthPlan:
    """The demo's April 2020 plan (default seed)."""
    return plan_month()


@pytest.fixture(scope="session")
def summary(month_plan: MonthPlan) -> StreamSummary:
    """The whole generated month, summarised by the tests' own metric implementation."""
    return summarise(month_plan.events())
