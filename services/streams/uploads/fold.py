"""Pure rollup arithmetic of uploads: new events → deltas of the four upload rollup tables."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from typing import NamedTuple

from services.streams.base import ConsumedEvent
from services.streams.rollups import Deltas, Merge, RollupTable
from services.streams.uploads.model import Mode, UploadEvent

_SUMS = (("records", "bigint"), ("documents", "bigint"), ("events", "bigint"))
UPLOAD_DAILY = RollupTable("upload_daily", (("org_code", "text"), ("day", "date")), _SUMS)
"""Per institution and day of uploaded_at: upload days and the missing-upload alert."""
_QUALITY_SUMS = (("incomplete", "bigint"), ("nonconforming", "bigint"), ("unlinked", "bigint"))
UPLOAD_MONTHLY_TABLES = RollupTable(
    "upload_monthly_tables",
    (("org_code", "text"), ("month", "date"), ("table_code", "text")),
    _SUMS + _QUALITY_SUMS,
)
"""Per institution, month of uploaded_at and table: records, documents, tables, categories, EHR
cumulatives, and the data-quality counts (completeness, conformity and linkage rates)."""
CONFORMANCE_DAILY = RollupTable(
    "conformance_daily",
    (("org_code", "text"), ("table_code", "text"), ("business_date", "date")),
    (("realtime_records", "bigint"), ("scheduled_records", "bigint")),
)
"""Per institution, table and business_date: records per channel, for conformance."""
CHANNEL_LAST_SEEN = RollupTable(
    "channel_last_seen",
    (("org_code", "text"), ("mode", "text")),
    (("last_uploaded_at", "timestamptz"), ("last_received_at", "timestamptz")),
    Merge.GREATEST,
)
"""Liveness per institution and channel (any event, record_count 0 included)."""

UPLOAD_SLOTS = RollupTable(
    "upload_slots",
    (("org_code", "text"), ("table_code", "text"), ("mode", "text"), ("business_date", "date")),
    (("first_lag_s", "bigint"),),
    Merge.LEAST,
)
"""Per institution, table, channel and business_date with records: when its first records arrived,
as seconds after the end of the business day (platform time zone; negative: before it ended).
The expected-uploads figures (reporting rate, on-time rate, scheduled lag) read these slots."""

ROLLUPS = (UPLOAD_DAILY, UPLOAD_MONTHLY_TABLES, CONFORMANCE_DAILY, CHANNEL_LAST_SEEN, UPLOAD_SLOTS)


def fold(events: Sequence[ConsumedEvent[UploadEvent]], zone: tzinfo, into: Deltas) -> None:
    """Add new uploads; one without records counts only as liveness (`events`, last seen)."""
    daily, monthly = into.rows(UPLOAD_DAILY), into.rows(UPLOAD_MONTHLY_TABLES)
    conformance, last_seen = into.rows(CONFORMANCE_DAILY), into.rows(CHANNEL_LAST_SEEN)
    slots = into.rows(UPLOAD_SLOTS)
    day_ends: dict[date, float] = {}
    realtime = Mode.REALTIME
    # Written out per table rather than through a helper: this loop runs once per event.
    for consumed in events:
        event = consumed.event
        org, count = event.org_code, event.record_count
        records, documents = (count, event.document_count) if count > 0 else (0, 0)
        # Each is at most record_count (the model's rule), so an event without records adds 0.
        incomplete, nonconforming, unlinked = (
            event.incomplete_records,
            event.nonconforming_records,
            event.unlinked_records,
        )
        day = event.uploaded_at.astimezone(zone).date()
        key: tuple[object, ...] = (org, day)
        row = daily.get(key)
        if row is None:
            daily[key] = [records, documents, 1]
        else:
            row[0] += records
            row[1] += documents
            row[2] += 1
        key = (org, day.replace(day=1), event.table_code)
        row = monthly.get(key)
        if row is None:
            monthly[key] = [records, documents, 1, incomplete, nonconforming, unlinked]
        else:
            row[0] += records
            row[1] += documents
            row[2] += 1
            row[3] += incomplete
            row[4] += nonconforming
            row[5] += unlinked
        key = (org, event.table_code, event.business_date)
        row = conformance.get(key)
        if row is None:
            row = conformance[key] = [0, 0]
        row[0 if event.mode is realtime else 1] += count
        if count > 0:
            business = event.business_date
            end = day_ends.get(business)
            if end is None:
                end = day_ends[business] = day_end(business, zone)
            lag = math.floor(event.uploaded_at.timestamp() - end)
            key = (org, event.table_code, event.mode.value, business)
            row = slots.get(key)
            if row is None:
                slots[key] = [lag]
            elif lag < row[0]:
                row[0] = lag
        key = (org, event.mode.value)
        row = last_seen.get(key)
        if row is None:
            last_seen[key] = [event.uploaded_at, consumed.received_at]
        else:
            row[0] = max(row[0], event.uploaded_at)
            row[1] = max(row[1], consumed.received_at)


def day_end(day: date, zone: tzinfo) -> float:
    """Unix time of the end of `day` (00:00 of the next day) in the platform time zone."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).timestamp()


class ChannelRecords(NamedTuple):
    """Records of one (table, business_date) per channel."""

    realtime: int = 0
    scheduled: int = 0


def conformance_sums(pairs: Iterable[ChannelRecords]) -> tuple[int, int, int]:
    """(Σ min(R, S), Σ max(R, S), number of pairs) over the pairs where max(R, S) > 0."""
    low = high = count = 0
    for pair in pairs:
        top = max(pair.realtime, pair.scheduled)
        if top > 0:
            low += min(pair.realtime, pair.scheduled)
            high += top
            count += 1
    return low, high, count
