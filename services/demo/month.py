"""A deterministic generator of the April 2020 event stream, in the contract's wire shapes.

`plan_month(seed)` decides everything that is counted (per institution, table, business
date and channel; per kiosk institution and day) before a single event is written, so
the plan knows its exact totals; `MonthPlan.events()` then writes the stream as
`("upload", event)` / `("kiosk", event)` pairs in arrival order. Kiosk transactions
(about 1.1 M) are written one day at a time, so the stream is never held in memory
whole; the ~90 k upload events are planned up front.

Applied to the contract's metric definitions (calendar days of `Asia/Shanghai`, from
`uploaded_at` / `occurred_at`; conformance by `business_date`; each `event_id` once per
institution) the stream reproduces the bulletin (see `services/demo/expected.py` and
`services/demo/README.md` for what is reproduced and the documented exceptions).

What real streams have, and this one therefore has:
- both channels: realtime uploads on the business day, the nightly scheduled batch for
  business date D after midnight on D+1, so the batch for 2020-03-31 lands in April and
  the batch for 2020-04-30 lands in May (the April window is planned around both);
- realtime and scheduled records of a (table, business_date) that differ a little, and
  tables that only one channel carries;
- outages: days without uploads, after which the backlog arrives late (realtime) and
  the nightly job catches up several business dates at once;
- duplicates (the same event, identical, re-sent seconds or days later), events that
  arrive days after their timestamp, emission order that is not timestamp order;
- uploads and kiosk transactions within a minute of midnight on both sides, and clocks
  that write `+00:00`, `+09:00` or `-04:00`, so a UTC-date or string-date reading
  gets the April figures wrong;
- liveness uploads with `record_count` 0 on days and tables that must not count;
- two hospitals whose vendor numbers events `evt-00000001`, ... so the same event_id
  occurs at two institutions and must count at each.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from functools import cache
from typing import Literal, NotRequired, TypedDict, cast

from services.demo.bulletin import Bulletin, KioskUsageRow, load_bulletin
from services.demo.clock import (
    APR1,
    APR30,
    DAY,
    LOCAL_OFFSET,
    MAR31,
    MAY1,
    MONTH,
    MONTH_FIRST,
    MONTH_LAST,
    apportion,
    at,
    clock_texts,
    date_text,
    day_factor,
    day_of,
    int_weight,
    stamp,
)
from services.demo.daily import flush_day
from services.demo.errors import PlanError
from services.demo.reference import Category, DemoReference, Kind, Table, build_reference, org_code_of

DEFAULT_SEED = 20200401
PLATFORM_TZ = "Asia/Shanghai"

Mode = Literal["realtime", "scheduled"]
KioskKind = Literal["registration", "payment"]


class UploadEvent(TypedDict):
    """Body of one `POST /v1/uploads` event."""

    event_id: str
    org_code: str
    table_code: str
    mode: str
    business_date: str
    uploaded_at: str
    record_count: int
    document_count: NotRequired[int]


class KioskEvent(TypedDict):
    """Body of one `POST /v1/kiosk-transactions` event."""

    event_id: str
    org_code: str
    kiosk_id: str
    kind: str
    amount: str
    occurred_at: str


StreamItem = tuple[Literal["upload"], UploadEvent] | tuple[Literal["kiosk"], KioskEvent]

# --- the demo's story, by bulletin unit name -------------------------------------------

# April days without any upload. Each set has 30 - upload_days days of the bulletin.
INACTIVE_DAYS: Mapping[str, frozenset[int]] = {
    "高淳区": frozenset(range(8, 19)),  # interface down 8-18 April; backlog on the 19th
    "秦淮区": frozenset({4, 5, 6, 11, 12, 18, 19}),  # uploads on working days only
    "江北新区": frozenset({21, 22}),
    "江苏省肿瘤医院": frozenset({13, 14, 15}),
    "南京脑科医院": frozenset({2, 3, 4, 5, 6}),
    "江苏省第二中医院": frozenset({4, 5, 6, 12}),
    "东部战区空军医院": frozenset({11, 12}),
    "南京市职业病防治院": frozenset({4, 5, 6, 11, 12, 18, 19, 25}),
    # The front-end processor is broken; staff upload the backlog by hand on six days.
    "江苏省中西医结合医院": frozenset(range(1, 31)) - {2, 9, 16, 23, 28, 30},
}

# Systems whose clock writes another offset than +08:00 (minutes east of UTC).
UPLOAD_CLOCKS: Mapping[tuple[str, Mode], int] = {
    ("江宁区", "scheduled"): 0,  # the batch server runs on UTC
    ("南京鼓楼医院", "scheduled"): 0,
    ("江苏省人民医院", "realtime"): 0,
    ("南京市儿童医院", "realtime"): 540,  # a hosted interface engine in Tokyo
    ("浦口区", "scheduled"): -240,  # a vendor cloud region on US Eastern time
}
KIOSK_CLOCKS: Mapping[str, int] = {
    "江苏省口腔医院": 0,  # the kiosk vendor's terminals keep UTC
    "江北新区": 0,
    "南京明基医院": 540,  # terminals set up with the vendor's Tokyo image
}

# One HIS vendor numbers upload events per installation from 1: the ids collide
# across these two hospitals and must be counted at each.
VENDOR_SEQUENTIAL_IDS: frozenset[str] = frozenset({"江苏省中医院", "南京市中医院"})

# Share of an April category total planned for hospitals (not in the bulletin).
_HOSPITAL_OUTPATIENT_SHARE = (0.05, 0.12)
_HOSPITAL_DISCHARGE_SHARE = (0.003, 0.01)
# Share of a cumulative health-record figure uploaded in April itself.
_EHR_APRIL_SHARE: Mapping[Category, tuple[float, float]] = {
    "ehr_basic": (0.01, 0.03),
    "ehr_hypertension": (0.03, 0.08),
    "ehr_diabetes": (0.03, 0.08),
}
_EHR_CATEGORIES: tuple[Category, ...] = ("ehr_basic", "ehr_hypertension", "ehr_diabetes")
# Where the cumulative health records came from before April: an initial archive load
# and the monthly batches of the first quarter (upload dates, relative weights).
_EHR_HISTORY: tuple[tuple[date, int], ...] = (
    (date(2019, 7, 1), 70),
    (date(2020, 1, 1), 10),
    (date(2020, 2, 1), 10),
    (date(2020, 3, 1), 10),
)

_DUPLICATE_SHARE_UPLOADS = 0.01
_DUPLICATE_SHARE_KIOSK = 0.002
_LATE_ARRIVAL_SHARE = 0.003
_LATE_REALTIME_SHARE = 0.01
_NEAR_MIDNIGHT_SHARE = 0.025
_SINGLE_CHANNEL_MAX_SHARE = 0.01

# Hourly shape of kiosk use; night hours only where the kiosks serve an emergency department.
_REG_HOURS = (0, 0, 0, 0, 0, 0, 0, 6, 10, 9, 7, 4, 2, 4, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0)
_PAY_HOURS = (0, 0, 0, 0, 0, 0, 0, 2, 6, 9, 10, 8, 4, 4, 7, 7, 6, 4, 1.5, 1, 0.8, 0.6, 0, 0)
_NIGHT_HOURS = (
    0.06,
    0.05,
    0.04,
    0.04,
    0.04,
    0.05,
    0.1,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0.3,
    0.25,
    0.2,
    0.15,
    0.12,
    0.08,
)
_ALL_NIGHT_MIN_KIOSKS = 20


def _apportion_min1(total: int, weights: Sequence[int]) -> list[int]:
    if total < len(weights):
        raise PlanError(f"cannot give each of {len(weights)} parts at least 1 of {total}")
    return [1 + p for p in apportion(total - len(weights), weights)]


# --- uploads -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadTargets:
    """The April 2020 upload figures the plan produces for one institution."""

    org_code: str
    records_uploaded: int
    documents_uploaded: int
    upload_days: int
    uploaded_tables: int
    outpatient_visits: int
    discharges: int
    ehr_basic_cumulative: int
    ehr_hypertension_cumulative: int
    ehr_diabetes_cumulative: int
    conformance_rate: Fraction | None
    upload_dates: frozenset[date]
    """Every day (Shanghai) of the stream with records from this institution, April or not."""


@dataclass(slots=True)
class _Slot:
    table: str
    business_date: int
    mode: Mode
    at: int
    weight: int
    tag: str
    records: int = 0
    documents: int | None = None


@dataclass(frozen=True, slots=True)
class _UploadInput:
    org_code: str
    unit: str
    kind: Kind
    records: int
    upload_days: int
    documents: int
    outpatient_visits: int | None
    discharges: int | None
    ehr_cumulative: Mapping[Category, int]


def _upload_inputs(bulletin: Bulletin) -> list[_UploadInput]:
    inputs = [
        _UploadInput(
            org_code=org_code_of(d.unit),
            unit=d.unit,
            kind="district",
            records=d.records_uploaded,
            upload_days=d.upload_days,
            documents=0,  # districts upload tables, not CDA documents (no figure either)
            outpatient_visits=d.outpatient_visits,
            discharges=d.discharges,
            ehr_cumulative={
                "ehr_basic": d.ehr_basic_cumulative,
                "ehr_hypertension": d.ehr_hypertension_cumulative,
                "ehr_diabetes": d.ehr_diabetes_cumulative,
            },
        )
        for d in bulletin.districts
    ]
    inputs.extend(
        _UploadInput(
            org_code=org_code_of(h.unit),
            unit=h.unit,
            kind="hospital",
            records=h.records_uploaded,
            upload_days=h.upload_days,
            documents=h.documents_uploaded,
            outpatient_visits=None,
            discharges=None,
            ehr_cumulative={},
        )
        for h in bulletin.hospitals
    )
    return inputs


def _category_totals(inp: _UploadInput, tables: Sequence[Table], rng: random.Random) -> dict[Category, int]:
    """April-window records per category: the bulletin's figures, the rest planned."""
    present = {t.category for t in tables}
    totals: dict[Category, int] = {}
    if inp.kind == "district":
        assert inp.outpatient_visits is not None and inp.discharges is not None
        totals["outpatient_visit"] = inp.outpatient_visits
        totals["discharge"] = inp.discharges
    else:
        totals["outpatient_visit"] = round(inp.records * rng.uniform(*_HOSPITAL_OUTPATIENT_SHARE))
        totals["discharge"] = round(inp.records * rng.uniform(*_HOSPITAL_DISCHARGE_SHARE))
    for category in _EHR_CATEGORIES:
        cumulative = inp.ehr_cumulative.get(category, 0)
        if category in present:
            totals[category] = round(cumulative * rng.uniform(*_EHR_APRIL_SHARE[category]))
    totals["other"] = inp.records - sum(totals.values())
    for category, total in totals.items():
        count = sum(1 for t in tables if t.category == category)
        if (count == 0) != (total == 0) or total < count:
            raise PlanError(f"{inp.unit}: {total} {category} records for {count} tables")
    return totals


def _plan_uploads(
    inp: _UploadInput, ref: DemoReference, seed: int
) -> tuple[list[_Slot], UploadTargets, dict[Mode, int]]:
    """Every upload event of one institution (before ids) and the figures they produce."""
    rng = random.Random(f"{seed}:uploads:{inp.org_code}")  # noqa: S311 - reproducible demo data, no secret
    tables = [ref.table(code) for code in ref.uploaded[inp.org_code]]
    main = next(t for t in tables if t.category == "outpatient_visit")
    inactive = INACTIVE_DAYS.get(inp.unit, frozenset())
    active = {APR1 + d - 1 for d in range(1, 31) if d not in inactive}
    if len(active) != inp.upload_days:
        raise PlanError(f"{inp.unit}: {len(active)} active days planned, bulletin says {inp.upload_days}")

    def next_active(ordinal: int) -> int:
        if ordinal < APR1 or ordinal > APR30:
            return ordinal
        return min((a for a in active if a >= ordinal), default=MAY1)

    totals = _category_totals(inp, tables, rng)
    per_table: dict[str, int] = {}
    for category, total in totals.items():
        of_category = [t for t in tables if t.category == category]
        if not of_category:
            continue
        sigma = 1.2 if category == "other" else 0.4
        shares = _apportion_min1(total, [int_weight(rng.lognormvariate(0, sigma)) for _ in of_category])
        per_table.update(zip((t.table_code for t in of_category), shares, strict=True))

    midnight_cron = rng.random() < 0.4
    batch_start = 5 if midnight_cron else rng.randrange(3_600, 12_600)
    step = rng.randint(3, 9)
    slots: list[_Slot] = []
    for index, table in enumerate(tables):
        clinical = not table.category.startswith("ehr_")
        # A few small tables travel on one channel only (an interface never built);
        # the big ones on both, with a little loss on some days.
        draw = rng.random()
        profile = "both"
        if table is not main and per_table[table.table_code] < _SINGLE_CHANNEL_MAX_SHARE * inp.records:
            profile = "scheduled" if draw < 0.06 else "realtime" if draw < 0.09 else "both"
        lossy = rng.random() < 0.35
        table_slots: list[_Slot] = []
        for business in range(MAR31, APR30 + 1):
            base = day_factor(date.fromordinal(business), clinical) * rng.lognormvariate(0, 0.15)
            if profile != "scheduled":
                loss = 1 - rng.uniform(0.005, 0.04) if lossy and rng.random() < 0.3 else 1.0
                if business == MAR31 or (business in active and table is main):
                    up, late = business, False
                elif rng.random() < _LATE_REALTIME_SHARE:
                    up, late = next_active(business + rng.randint(2, 5)), True
                else:
                    up, late = next_active(business), False
                if late:
                    second = rng.randrange(9 * 3_600, 17 * 3_600)
                elif up == business:
                    near_midnight = rng.random() < _NEAR_MIDNIGHT_SHARE
                    second = DAY - 60 + rng.randrange(60) if near_midnight else rng.randrange(25_200, DAY - 60)
                else:
                    # Backlog after an outage, sent when the system is back in the morning.
                    second = 8 * 3_600 + ((up - business - 1) * len(tables) + index) * 5
                table_slots.append(
                    _Slot(table.table_code, business, "realtime", at(up, second), int_weight(base * loss), "R")
                )
            if profile != "realtime":
                loss = 1 - rng.uniform(0.005, 0.04) if lossy and rng.random() < 0.3 else 1.0
                up = next_active(business + 1)
                jitter = 0 if midnight_cron else rng.randrange(600)
                # The nightly job sends one table after the other; after an outage it
                # catches up every business date it missed, newest first.
                second = batch_start + jitter + ((up - business - 1) * len(tables) + index) * step
                table_slots.append(
                    _Slot(table.table_code, business, "scheduled", at(up, second), int_weight(base * loss), "S")
                )
        window = [s for s in table_slots if APR1 <= day_of(s.at) <= APR30]
        target = per_table[table.table_code]
        for slot, records in zip(window, apportion(target, [s.weight for s in window]), strict=True):
            slot.records = records
        window_weight = sum(s.weight for s in window)
        for slot in table_slots:
            if not APR1 <= day_of(slot.at) <= APR30:
                slot.records = round(slot.weight * target / window_weight)
        slots.extend(table_slots)

    _ensure_every_active_day(slots, main.table_code, active, inp.unit)
    _plan_documents(slots, inp)
    slots.extend(_ehr_history(slots, tables, totals, inp))
    slots.extend(_liveness(inp, ref, tables, main, active, rng))
    targets = UploadTargets(
        org_code=inp.org_code,
        records_uploaded=inp.records,
        documents_uploaded=inp.documents,
        upload_days=inp.upload_days,
        uploaded_tables=len(tables),
        outpatient_visits=totals["outpatient_visit"],
        discharges=totals["discharge"],
        ehr_basic_cumulative=inp.ehr_cumulative.get("ehr_basic", 0),
        ehr_hypertension_cumulative=inp.ehr_cumulative.get("ehr_hypertension", 0),
        ehr_diabetes_cumulative=inp.ehr_cumulative.get("ehr_diabetes", 0),
        conformance_rate=_conformance(slots),
        upload_dates=frozenset(date.fromordinal(day_of(s.at)) for s in slots if s.records > 0),
    )
    clocks: dict[Mode, int] = {
        mode: UPLOAD_CLOCKS.get((inp.unit, mode), LOCAL_OFFSET) for mode in ("realtime", "scheduled")
    }
    return slots, targets, clocks


def _ensure_every_active_day(slots: list[_Slot], main: str, active: set[int], unit: str) -> None:
    """Move single records onto active days that ended up with none (tiny institutions)."""
    per_day: dict[int, int] = defaultdict(int)
    for slot in slots:
        per_day[day_of(slot.at)] += slot.records
    for day in sorted(active):
        if per_day[day] > 0:
            continue
        own = next(s for s in slots if s.table == main and s.mode == "realtime" and s.business_date == day)
        donor = max(
            (s for s in slots if s.table == main and APR1 <= day_of(s.at) <= APR30 and s.records > 1),
            key=lambda s: s.records,
            default=None,
        )
        if donor is None or day_of(own.at) != day:
            raise PlanError(f"{unit}: no records for active day {date.fromordinal(day)}")
        donor.records -= 1
        own.records += 1


def _plan_documents(slots: list[_Slot], inp: _UploadInput) -> None:
    """CDA documents of a hospital: exactly its figure in April, never more than records."""
    if inp.documents == 0:
        return  # the field is left out, and defaults to 0
    window = [s for s in slots if APR1 <= day_of(s.at) <= APR30 and s.records > 0]
    for slot, documents in zip(window, apportion(inp.documents, [s.records for s in window]), strict=True):
        if documents > slot.records:
            raise PlanError(f"{inp.unit}: {documents} documents in an upload of {slot.records} records")
        slot.documents = documents
    for slot in slots:
        if slot.documents is None:
            slot.documents = slot.records * inp.documents // inp.records


def _ehr_history(
    slots: Sequence[_Slot], tables: Sequence[Table], totals: Mapping[Category, int], inp: _UploadInput
) -> list[_Slot]:
    """Pre-April uploads that make up the rest of each cumulative health-record figure."""
    history: list[_Slot] = []
    for category in _EHR_CATEGORIES:
        cumulative = inp.ehr_cumulative.get(category, 0)
        codes = [t.table_code for t in tables if t.category == category]
        if not codes:
            if cumulative:
                raise PlanError(f"{inp.unit}: cumulative {category} {cumulative} without a table")
            continue
        # Records of the category uploaded before April inside the planned month (31 March).
        before = sum(s.records for s in slots if s.table in codes and day_of(s.at) < APR1)
        rest = cumulative - totals[category] - before
        if rest < 0:
            raise PlanError(f"{inp.unit}: {category} April uploads exceed the cumulative figure")
        keys = [(code, day, w) for code in codes for day, w in _EHR_HISTORY]
        for n, ((code, day, _), records) in enumerate(zip(keys, apportion(rest, [w for _, _, w in keys]), strict=True)):
            if records:
                upload_day = day.toordinal()
                history.append(
                    _Slot(code, upload_day - 1, "scheduled", at(upload_day, 2 * 3_600 + 60 * n), 0, "H", records)
                )
    return history


def _liveness(
    inp: _UploadInput,
    ref: DemoReference,
    tables: Sequence[Table],
    main: Table,
    active: set[int],
    rng: random.Random,
) -> list[_Slot]:
    """Heartbeats with record_count 0: on days without uploads, and on a table not uploaded."""
    beats = [
        _Slot(main.table_code, day, "realtime", at(day, 12 * 3_600 + rng.randrange(3_600)), 0, "L")
        for day in range(APR1, APR30 + 1)
        if day not in active
    ]
    uploaded = {t.table_code for t in tables}
    declared_only = [code for code in ref.declared(inp.org_code) if code not in uploaded]
    idle = declared_only or [t.table_code for t in ref.required(inp.kind) if t.table_code not in uploaded]
    if idle:
        day = date(2020, 4, 15).toordinal()
        beats.append(_Slot(sorted(idle)[0], day - 1, "scheduled", at(day, 3_600 + rng.randrange(600)), 0, "L"))
    return beats


def _conformance(slots: Sequence[_Slot]) -> Fraction | None:
    """Contract conformance over business dates of April: sum min(R, S) / sum max(R, S)."""
    pairs: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for slot in slots:
        if APR1 <= slot.business_date <= APR30:
            pairs[(slot.table, slot.business_date)][slot.mode == "scheduled"] += slot.records
    low = sum(min(r, s) for r, s in pairs.values())
    high = sum(max(r, s) for r, s in pairs.values())
    return Fraction(low, high) if high else None


def _upload_events(slots: list[_Slot], inp: _UploadInput, clocks: Mapping[Mode, int]) -> list[tuple[int, UploadEvent]]:
    """One institution's events with their upload times; ids in upload order, empty slots left out."""
    events: list[tuple[int, UploadEvent]] = []
    slots = sorted((s for s in slots if s.records > 0 or s.tag == "L"), key=lambda s: (s.at, s.table, s.mode))
    for number, slot in enumerate(slots, start=1):
        business = date.fromordinal(slot.business_date)
        if inp.unit in VENDOR_SEQUENTIAL_IDS:
            event_id = f"evt-{number:08d}"
        else:
            tag = slot.tag if slot.tag in "LH" else slot.mode[0].upper()
            event_id = f"{inp.org_code}:{slot.table}:{business:%Y%m%d}:{tag}"
        event: UploadEvent = {
            "event_id": event_id,
            "org_code": inp.org_code,
            "table_code": slot.table,
            "mode": slot.mode,
            "business_date": business.isoformat(),
            "uploaded_at": stamp(slot.at, clocks[slot.mode]),
            "record_count": slot.records,
        }
        if slot.documents is not None:
            event["document_count"] = slot.documents
        events.append((slot.at, event))
    if len({e["event_id"] for _, e in events}) != len(events):
        raise PlanError(f"{inp.unit}: event ids are not unique")
    return events


# --- kiosks ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _KindPlan:
    kind: KioskKind
    daily_counts: tuple[int, ...]  # index 0 is 1 April
    daily_units: tuple[int, ...]  # amount per day in `unit` cents
    unit: int
    remainder: int  # cents that do not fit `unit`, added to one transaction of `remainder_day`
    remainder_day: int
    daily_duplicates: tuple[int, ...]
    sigma: float
    hours: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class _Extra:
    """Transactions just outside April (31 March night, 1 May morning): they must not count."""

    ordinal: int
    kind: KioskKind
    seconds: tuple[int, ...]
    cents: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _KioskPlan:
    org_code: str
    kiosk_ids: tuple[str, ...]
    clock: int
    all_night: bool
    kinds: tuple[_KindPlan, ...]
    extras: tuple[_Extra, ...]
    offline_days: frozenset[int]  # April day numbers on which one kiosk stores and forwards
    seed: str


def kiosk_targets(row: KioskUsageRow) -> tuple[int, int, int, int]:
    """(registrations, registration cents, payments, payment cents) the demo generates for a row.

    Zero transactions cannot carry an amount: where the bulletin prints 0 registrations
    with a non-zero amount (南京市口腔医院), the demo generates 0 and 0.00.
    """
    registration_cents = int(row.registration_amount * 100) if row.registrations else 0
    payment_cents = int(row.payment_amount * 100) if row.payments else 0
    return row.registrations, registration_cents, row.payments, payment_cents


def _kiosk_day_weights(rng: random.Random) -> list[int]:
    return [int_weight(day_factor(date(2020, 4, d), True) * rng.lognormvariate(0, 0.08)) for d in range(1, 31)]


def _plan_kind(kind: KioskKind, count: int, cents: int, all_night: bool, rng: random.Random) -> _KindPlan | None:
    if count == 0:
        return None
    daily_counts = apportion(count, _kiosk_day_weights(rng))
    # Registration fees are whole yuan; a total with fen gets them on one transaction.
    unit = 100 if kind == "registration" else 1
    remainder = cents % unit
    noise = [int_weight(c * rng.uniform(0.9, 1.1)) if c else 0 for c in daily_counts]
    daily_units = apportion(cents // unit, noise)
    base_hours = _REG_HOURS if kind == "registration" else _PAY_HOURS
    hours = tuple(h + (n if all_night else 0) for h, n in zip(base_hours, _NIGHT_HOURS, strict=True))
    share = _DUPLICATE_SHARE_KIOSK
    return _KindPlan(
        kind=kind,
        daily_counts=tuple(daily_counts),
        daily_units=tuple(daily_units),
        unit=unit,
        remainder=remainder,
        remainder_day=max(range(30), key=lambda d: daily_counts[d]),
        daily_duplicates=tuple(min(c, int(c * share + rng.random())) for c in daily_counts),
        sigma=0.35 if kind == "registration" else 0.9,
        hours=hours,
    )


def _plan_extras(
    all_night: bool, registrations: int, reg_cents: int, payments: int, pay_cents: int, rng: random.Random
) -> tuple[_Extra, ...]:
    extras = []
    if all_night and payments:
        mean = pay_cents // payments
        for ordinal, seconds in (
            # 31 March, the last minute and the hour before; 1 May, the first minute and the night.
            (
                MAR31,
                [DAY - 60 + rng.randrange(60) for _ in range(3)] + [82_800 + rng.randrange(3_540) for _ in range(2)],
            ),
            (MAY1, [rng.randrange(60) for _ in range(3)] + [60 + rng.randrange(25_140) for _ in range(3)]),
        ):
            cents = [max(1, int(mean * rng.lognormvariate(-0.4, 0.9))) for _ in seconds]
            extras.append(_Extra(ordinal, "payment", tuple(sorted(seconds)), tuple(cents)))
    if registrations:
        # 1 May 07:00-07:59 in Shanghai is still 30 April in UTC.
        fee = max(1, round(reg_cents / registrations / 100)) * 100
        seconds = sorted(7 * 3_600 + rng.randrange(3_600) for _ in range(4))
        extras.append(_Extra(MAY1, "registration", tuple(seconds), (fee,) * 4))
    return tuple(extras)


def _plan_kiosk(row: KioskUsageRow, ref: DemoReference, seed: int) -> _KioskPlan | None:
    org_code = org_code_of(row.unit)
    registrations, reg_cents, payments, pay_cents = kiosk_targets(row)
    if registrations == 0 and payments == 0:
        return None
    kiosk_ids = ref.kiosk_ids(org_code)
    if not kiosk_ids:
        raise PlanError(f"{row.unit}: transactions but no kiosks")
    rng = random.Random(f"{seed}:kiosk:{org_code}")  # noqa: S311 - reproducible demo data, no secret
    all_night = row.group == "hospital" and row.kiosks >= _ALL_NIGHT_MIN_KIOSKS
    kinds = tuple(
        plan
        for plan in (
            _plan_kind("registration", registrations, reg_cents, all_night, rng),
            _plan_kind("payment", payments, pay_cents, all_night, rng),
        )
        if plan is not None
    )
    offline = frozenset(d for d in range(1, 31) if len(kiosk_ids) > 1 and rng.random() < 0.04)
    return _KioskPlan(
        org_code=org_code,
        kiosk_ids=kiosk_ids,
        clock=KIOSK_CLOCKS.get(row.unit, LOCAL_OFFSET),
        all_night=all_night,
        kinds=kinds,
        extras=_plan_extras(all_night, registrations, reg_cents, payments, pay_cents, rng),
        offline_days=offline,
        seed=f"{seed}:kiosk:{org_code}",
    )


# (arrival seconds, tie, item): the tie keeps the heap order stable and never lets two
# items be compared.
_Entry = tuple[int, int, StreamItem]


@cache
def _lognormal_table(sigma: float) -> tuple[int, ...]:
    """1,024 integer log-normal weights, drawn once: picking from them is far cheaper
    than a log-normal draw per transaction, and the amounts look the same."""
    rng = random.Random(f"lognormal:{sigma}")  # noqa: S311 - reproducible demo data, no secret
    return tuple(int(rng.lognormvariate(0, sigma) * 1_000) + 1 for _ in range(1_024))


class _KioskWriter:
    """Writes the kiosk events of one day, with duplicates, delays and store-and-forward.

    This is the hot loop of the whole stream (1.1 M events), hence list comprehensions
    and parallel lists instead of one object per event and step.
    """

    def __init__(self) -> None:
        self.arrivals: list[int] = []
        self.items: list[StreamItem] = []
        self.later: list[tuple[int, StreamItem]] = []

    def day(self, plan: _KioskPlan, ordinal: int) -> None:
        """Append the day's events to `arrivals`/`items`, or to `later` if they arrive after it."""
        rng = random.Random(f"{plan.seed}:{ordinal}")  # noqa: S311 - reproducible demo data, no secret
        rnd = rng.random
        day_start = at(ordinal, 0)
        day_number = ordinal - APR1 + 1
        kiosk_ids = plan.kiosk_ids
        n_kiosks = len(kiosk_ids)
        offline = kiosk_ids[int(rnd() * n_kiosks)] if day_number in plan.offline_days else None
        ymd = date_text(ordinal).replace("-", "")
        clock = clock_texts()
        org_code = plan.org_code
        for kind_plan in plan.kinds:
            seconds, cents = self._transactions(plan, kind_plan, ordinal, rng)
            if not seconds:
                continue
            kind = kind_plan.kind
            id_prefix = f":{'R' if kind == 'registration' else 'P'}{ymd}"
            chosen = [kiosk_ids[int(rnd() * n_kiosks)] for _ in seconds]
            if plan.clock == LOCAL_OFFSET:
                # The usual +08:00 clock: the date part is fixed, the time is looked up.
                prefix = f"{date_text(ordinal)}T"
                stamps = [f"{prefix}{clock[s]}+08:00" for s in seconds]
            else:
                stamps = [stamp(day_start + s, plan.clock) for s in seconds]
            # cast: mypy cannot type a dict display inside a comprehension as a TypedDict,
            # and a constructor call per event would cost a second on the whole month.
            items = cast(
                list[StreamItem],
                [
                    (
                        "kiosk",
                        {
                            "event_id": f"{kiosk_id}{id_prefix}{n:06d}",
                            "org_code": org_code,
                            "kiosk_id": kiosk_id,
                            "kind": kind,
                            "amount": f"{amount // 100}.{amount % 100:02d}",
                            "occurred_at": occurred_at,
                        },
                    )
                    for n, kiosk_id, amount, occurred_at in zip(itertools.count(1), chosen, cents, stamps, strict=False)
                ],
            )
            arrivals = [day_start + s + int(rnd() * 20) for s in seconds]
            if offline is not None:
                # Stored on the kiosk and forwarded when it reconnects the next morning.
                forwarded = itertools.count(7 * 3_600 + day_start + DAY)
                for i, kiosk_id in enumerate(chosen):
                    if kiosk_id == offline:
                        arrivals[i] = next(forwarded)
            if 1 <= day_number <= 30:
                for i in sorted(rng.sample(range(len(items)), kind_plan.daily_duplicates[day_number - 1])):
                    # A retried request (seconds later) or a batch re-sent days later.
                    delay = 1 + int(rnd() * 29) if rnd() < 0.8 else rng.randint(1, 3) * DAY
                    kind_name, event = items[i]
                    self.later.append((arrivals[i] + delay, (kind_name, event.copy())))  # type: ignore[arg-type]
            day_end = day_start + DAY
            for arrival, item in zip(arrivals, items, strict=True):
                if arrival >= day_end:
                    self.later.append((arrival, item))
            self.arrivals.extend(a for a in arrivals if a < day_end)
            self.items.extend(item for a, item in zip(arrivals, items, strict=True) if a < day_end)

    @staticmethod
    def _transactions(
        plan: _KioskPlan, kind_plan: _KindPlan, ordinal: int, rng: random.Random
    ) -> tuple[list[int], list[int]]:
        if not APR1 <= ordinal <= APR30:
            extras = [e for e in plan.extras if e.ordinal == ordinal and e.kind == kind_plan.kind]
            return [s for e in extras for s in e.seconds], [c for e in extras for c in e.cents]
        index = ordinal - APR1
        count = kind_plan.daily_counts[index]
        if count == 0:
            return [], []
        rnd = rng.random
        hours = rng.choices(range(0, DAY, 3_600), weights=kind_plan.hours, k=count)
        seconds = sorted([h + int(rnd() * 3_600) for h in hours])
        if plan.all_night and ordinal == APR1:
            seconds[0] = int(rnd() * 60)  # 1 April, first minute: April in Shanghai, March in UTC
        if plan.all_night and ordinal == APR30:
            seconds[-1] = DAY - 60 + int(rnd() * 60)  # 30 April, last minute
        weights = rng.choices(_lognormal_table(kind_plan.sigma), k=count)
        cents = [u * kind_plan.unit for u in apportion(kind_plan.daily_units[index], weights)]
        if index == kind_plan.remainder_day:
            cents[0] += kind_plan.remainder
        return seconds, cents


# --- the month ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MonthPlan:
    """Everything the April 2020 stream will contain, decided; `events()` writes it."""

    seed: int
    reference: DemoReference
    upload_targets: Mapping[str, UploadTargets]
    upload_events: int
    """Upload events written, duplicates included."""
    kiosk_events: int
    """Kiosk events written, duplicates included."""
    duplicate_events: int
    """Re-sent copies among the above (each counts once)."""
    _uploads: tuple[tuple[int, UploadEvent], ...]
    """(arrival, event), in no particular order."""
    _kiosks: tuple[_KioskPlan, ...]

    @property
    def total_events(self) -> int:
        """Every event `events()` yields."""
        return self.upload_events + self.kiosk_events

    def events(self) -> Iterator[StreamItem]:
        """The stream in arrival order, written one day at a time."""
        return (item for _, item in self.timed())

    def timed(self) -> Iterator[tuple[int, StreamItem]]:
        """The stream as (arrival in Shanghai seconds, item), in arrival order."""
        ties = itertools.count()
        pending: list[_Entry] = [(arrival, next(ties), ("upload", event)) for arrival, event in self._uploads]
        heapq.heapify(pending)
        writer = _KioskWriter()
        for ordinal in range(MAR31, MAY1 + 1):
            writer.arrivals, writer.items, writer.later = [], [], []
            for plan in self._kiosks:
                writer.day(plan, ordinal)
            for arrival, item in writer.later:
                heapq.heappush(pending, (arrival, next(ties), item))
            # Everything that has arrived by the end of this day goes out, in arrival order.
            yield from flush_day(pending, writer.arrivals, writer.items, at(ordinal + 1, 0))
        yield from flush_day(pending, [], [], None)


def plan_month(
    seed: int = DEFAULT_SEED, bulletin: Bulletin | None = None, reference: DemoReference | None = None
) -> MonthPlan:
    """Plan the April 2020 stream of the demo (deterministic for a seed)."""
    bulletin = bulletin if bulletin is not None else load_bulletin()
    ref = reference if reference is not None else build_reference(bulletin)
    upload_targets: dict[str, UploadTargets] = {}
    uploads: list[tuple[int, UploadEvent]] = []
    duplicates = 0
    for inp in _upload_inputs(bulletin):
        slots, targets, clocks = _plan_uploads(inp, ref, seed)
        upload_targets[inp.org_code] = targets
        rng = random.Random(f"{seed}:arrivals:{inp.org_code}")  # noqa: S311 - reproducible demo data, no secret
        for uploaded_at, event in _upload_events(slots, inp, clocks):
            # Seconds in transit; now and then days, when a relay's spool forwards late.
            arrival = uploaded_at + int(rng.expovariate(1 / 4))
            if rng.random() < _LATE_ARRIVAL_SHARE:
                arrival += rng.randint(1, 3) * DAY + rng.randrange(3_600)
            uploads.append((arrival, event))
            if rng.random() < _DUPLICATE_SHARE_UPLOADS:
                # A retried request (seconds later) or a batch re-sent days later.
                later = rng.randint(1, 30) if rng.random() < 0.8 else rng.randint(1, 3) * DAY + rng.randrange(7_200)
                uploads.append((arrival + later, event.copy()))
                duplicates += 1
    kiosk_plans = []
    kiosk_count = 0
    for row in bulletin.kiosks:
        plan = _plan_kiosk(row, ref, seed)
        if plan is None:
            continue
        kiosk_plans.append(plan)
        for kind_plan in plan.kinds:
            kiosk_count += sum(kind_plan.daily_counts) + sum(kind_plan.daily_duplicates)
            duplicates += sum(kind_plan.daily_duplicates)
        kiosk_count += sum(len(e.seconds) for e in plan.extras)
    return MonthPlan(
        seed=seed,
        reference=ref,
        upload_targets=upload_targets,
        upload_events=len(uploads),
        kiosk_events=kiosk_count,
        duplicate_events=duplicates,
        _uploads=tuple(uploads),
        _kiosks=tuple(kiosk_plans),
    )


def generate_month(seed: int = DEFAULT_SEED) -> Iterator[StreamItem]:
    """The April 2020 demo stream: `("upload", event)` and `("kiosk", event)` in arrival order."""
    return plan_month(seed).events()


__all__ = [
    "DEFAULT_SEED",
    "MONTH",
    "MONTH_FIRST",
    "MONTH_LAST",
    "KioskEvent",
    "MonthPlan",
    "StreamItem",
    "UploadEvent",
    "UploadTargets",
    "apportion",
    "generate_month",
    "kiosk_targets",
    "plan_month",
    "stamp",
]
