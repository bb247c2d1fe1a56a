"""Pure rollup arithmetic: from newly stored events to additive deltas of the rollup tables.

Only events whose (type, org_code, event_id) was new are folded, so adding a delta twice can
only happen if a batch is applied twice, which the stored consumer offsets prevent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal

from services.contract.models import KioskTransaction, Mode, UploadEvent


def local_day(moment: datetime, zone: tzinfo) -> date:
    """The calendar day of `moment` in the platform time zone."""
    return moment.astimezone(zone).date()


def month_of(day: date) -> date:
    """First day of the month holding `day` (months are keyed by their first day)."""
    return day.replace(day=1)


@dataclass
class UploadTotals:
    """Additive sums of upload events."""

    records: int = 0
    documents: int = 0
    events: int = 0

    def add(self, event: UploadEvent) -> None:
        """Fold one event in; one without records counts only as liveness (`events`)."""
        if event.record_count > 0:
            self.records += event.record_count
            self.documents += event.document_count
        self.events += 1


@dataclass
class ChannelRecords:
    """Records of one (table, business_date) per channel."""

    realtime: int = 0
    scheduled: int = 0


@dataclass
class KioskTotals:
    """Additive sums of kiosk transactions; the amount is exact."""

    transactions: int = 0
    amount: Decimal = Decimal("0.00")


@dataclass
class RollupDeltas:
    """What a batch of new events adds to each rollup table."""

    upload_daily: dict[tuple[str, date], UploadTotals] = field(default_factory=lambda: defaultdict(UploadTotals))
    upload_monthly_tables: dict[tuple[str, date, str], UploadTotals] = field(
        default_factory=lambda: defaultdict(UploadTotals)
    )
    conformance: dict[tuple[str, str, date], ChannelRecords] = field(
        default_factory=lambda: defaultdict(ChannelRecords)
    )
    kiosk_monthly: dict[tuple[str, date, str], KioskTotals] = field(default_factory=lambda: defaultdict(KioskTotals))
    last_seen: dict[tuple[str, str], tuple[datetime, datetime]] = field(default_factory=dict)

    def fold_upload(self, event: UploadEvent, zone: tzinfo, received_at: datetime) -> None:
        """Add one new upload event."""
        day = local_day(event.uploaded_at, zone)
        self.upload_daily[(event.org_code, day)].add(event)
        self.upload_monthly_tables[(event.org_code, month_of(day), event.table_code)].add(event)
        pair = self.conformance[(event.org_code, event.table_code, event.business_date)]
        if event.mode is Mode.REALTIME:
            pair.realtime += event.record_count
        else:
            pair.scheduled += event.record_count
        key = (event.org_code, event.mode.value)
        seen = self.last_seen.get(key)
        if seen is None:
            self.last_seen[key] = (event.uploaded_at, received_at)
        else:
            self.last_seen[key] = (max(seen[0], event.uploaded_at), max(seen[1], received_at))

    def fold_kiosk(self, event: KioskTransaction, zone: tzinfo) -> None:
        """Add one new kiosk transaction."""
        month = month_of(local_day(event.occurred_at, zone))
        totals = self.kiosk_monthly[(event.org_code, month, event.kind.value)]
        totals.transactions += 1
        totals.amount += event.amount


def fold(
    uploads: Iterable[UploadEvent],
    kiosk: Iterable[KioskTransaction],
    zone: tzinfo,
    received_at: datetime,
) -> RollupDeltas:
    """Deltas of a set of new events (the events must already be deduplicated)."""
    deltas = RollupDeltas()
    for upload in uploads:
        deltas.fold_upload(upload, zone, received_at)
    for transaction in kiosk:
        deltas.fold_kiosk(transaction, zone)
    return deltas


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
