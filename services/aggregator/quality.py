"""Data-quality gauges per institution, read from the database by a background task.

The figures are the ones of the monthly report, for the current month so far: the task
reads the month as the quality report does (`load_quality_month`: the uploads and kiosk
reports, whose formulas live once, in each stream's `report.py`), runs the data-quality
checks on it (`run_checks`: the findings per institution and severity, and each 12320
centre's appointment calls against its city's phone bookings), and adds two liveness readings
the reports do not have: when each channel last delivered, and the latest business date the
nightly (scheduled) channel has delivered records for.

Every refresh builds a new immutable `QualitySnapshot`; `QualityGauges` (a custom
Prometheus collector) exports the snapshot in hand at scrape time. So a scrape never sees
half a refresh, an institution removed from the reference data disappears at the next
refresh, and a rate that is undefined (nothing declared, no conformance pairs) is an
absent series rather than a made-up 0.

Cardinality: labels are `org_code` and `kind` (and `mode`, two values, on the per-channel
gauges; `dimension`, four values, on the quality ratios; `severity`, two, on the findings);
never a table, a check or a day. With N institutions that is at most 4N series per gauge
(see docs/monitoring.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import asyncpg
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from services.quality.checks import run_checks, span_of
from services.quality.cross_stream import CrossStreamFigure, cross_stream_figures
from services.quality.month import load_quality_month
from services.quality.problems import Severity
from services.quality.settings import Thresholds
from services.storage.connection import Connection

if TYPE_CHECKING:
    from services.aggregator.metrics import AggregatorMetrics
    from services.aggregator.settings import AggregatorSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InstitutionQuality:
    """The month-so-far figures of one institution (rates None where the report has null)."""

    org_code: str
    kind: str
    upload_days: int
    table_coverage: float | None
    declared_coverage: float | None
    conformance: float | None
    kiosk_registrations: int
    kiosk_payments: int
    dimensions: tuple[tuple[str, float | None], ...] = ()
    """(dimension, rate): completeness, conformity, linkage, continuity (None: the report's null)."""
    problems: int = 0
    """Findings of severity `problem` of the data-quality checks, month so far."""
    warnings: int = 0


@dataclass(frozen=True, slots=True)
class ChannelLiveness:
    """When an institution's channel last delivered any event (zero-record ones included)."""

    org_code: str
    kind: str
    mode: str
    last_uploaded_at: datetime
    last_received_at: datetime


@dataclass(frozen=True, slots=True)
class ScheduledProgress:
    """The latest business date the scheduled channel delivered records for."""

    org_code: str
    kind: str
    business_date: date


@dataclass(frozen=True)
class QualitySnapshot:
    """One refresh's readings."""

    month: date
    institutions: tuple[InstitutionQuality, ...]
    channels: tuple[ChannelLiveness, ...]
    scheduled: tuple[ScheduledProgress, ...]
    zone: ZoneInfo
    utc_offset_s: float
    cross_stream: tuple[CrossStreamFigure, ...] = ()


def platform_month(now: datetime, zone: ZoneInfo) -> date:
    """First day of the month `now` falls in, in the platform time zone."""
    return now.astimezone(zone).date().replace(day=1)


def day_start(day: date, zone: ZoneInfo) -> float:
    """Unix time of 00:00 of `day` in the platform time zone."""
    return datetime.combine(day, clock(0), tzinfo=zone).timestamp()


async def read_snapshot(
    conn: Connection,
    month: date,
    zone: ZoneInfo,
    now: datetime,
    scheduled_lookback: timedelta,
    thresholds: Thresholds | None = None,
) -> QualitySnapshot:
    """Read every quality figure of `month`; liveness and scheduled progress as of `now`.

    `scheduled_lookback` bounds the scan of raw events for the scheduled channel (a
    hypertable on `uploaded_at`, so only the last chunks are read); institutions whose
    nightly batch has carried no records for longer are not expected to send one.
    `thresholds`: the checks' (the contract's defaults when not given).
    """
    limits = thresholds or Thresholds()
    data = await load_quality_month(conn, month, None)
    found = {inst.org_code: inst.problems for inst in run_checks(data, span_of(data, now, zone), limits)}
    rows = [*data.districts, *data.hospitals]
    kiosks = {r.org_code: (r.registrations, r.payments) for r in data.kiosks if r.org_code is not None}
    institutions = tuple(
        InstitutionQuality(
            org_code=r.org_code,
            kind=r.kind.value,
            upload_days=r.upload_days,
            table_coverage=r.table_coverage_rate,
            declared_coverage=r.declared_coverage_rate,
            conformance=r.conformance_rate,
            kiosk_registrations=kiosks.get(r.org_code, (0, 0))[0],
            kiosk_payments=kiosks.get(r.org_code, (0, 0))[1],
            dimensions=(
                ("completeness", r.completeness_rate),
                ("conformity", r.conformity_rate),
                ("linkage", r.linkage_rate),
                ("continuity", r.continuity_rate),
            ),
            problems=sum(1 for p in found.get(r.org_code, ()) if p.severity is Severity.PROBLEM),
            warnings=sum(1 for p in found.get(r.org_code, ()) if p.severity is Severity.WARNING),
        )
        for r in rows
    )
    comparisons: tuple[CrossStreamFigure, ...] = ()
    if data.hotline is not None and data.appointments is not None:
        comparisons = tuple(
            cross_stream_figures(
                data.hotline.report, data.appointments.report, data.cities, limits.cross_stream_tolerance
            )
        )
    channels = tuple(
        ChannelLiveness(r["org_code"], r["kind"], r["mode"], r["last_uploaded_at"], r["last_received_at"])
        for r in await conn.fetch(
            """SELECT c.org_code, i.kind, c.mode, c.last_uploaded_at, c.last_received_at
               FROM channel_last_seen c JOIN cur_institutions i USING (org_code)
               ORDER BY c.org_code, c.mode"""
        )
    )
    scheduled = tuple(
        ScheduledProgress(r["org_code"], r["kind"], r["business_date"])
        for r in await conn.fetch(
            """SELECT e.org_code, i.kind, max(e.business_date) AS business_date
               FROM upload_events e JOIN cur_institutions i USING (org_code)
               WHERE e.mode = 'scheduled' AND e.record_count > 0
                 AND e.uploaded_at >= $1 AND e.uploaded_at <= $2
               GROUP BY e.org_code, i.kind
               ORDER BY e.org_code""",
            now - scheduled_lookback,
            # An institution whose clock runs ahead must not look punctual for tomorrow.
            now + timedelta(days=1),
        )
    )
    offset = now.astimezone(zone).utcoffset()
    return QualitySnapshot(
        month=month,
        institutions=institutions,
        channels=channels,
        scheduled=scheduled,
        zone=zone,
        utc_offset_s=offset.total_seconds() if offset is not None else 0.0,
        cross_stream=comparisons,
    )


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"aggregator_{name}", documentation, labels=labels)


class QualityGauges:
    """A Prometheus collector exporting the latest `QualitySnapshot` (nothing before the first)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._snapshot: QualitySnapshot | None = None
        registry.register(self)

    @property
    def snapshot(self) -> QualitySnapshot | None:
        """The snapshot being exported."""
        return self._snapshot

    def update(self, snapshot: QualitySnapshot) -> None:
        """Export `snapshot` from the next scrape on (a single reference swap)."""
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        """The metric families, without samples (for the registry's duplicate check)."""
        return list(self._families(None))

    def collect(self) -> Iterable[Metric]:
        """The metric families with the samples of the current snapshot."""
        return list(self._families(self._snapshot))

    def _families(self, snap: QualitySnapshot | None) -> Iterator[GaugeMetricFamily]:
        inst = ["org_code", "kind"]
        chan = ["org_code", "kind", "mode"]
        upload_days = _gauge("institution_upload_days", "Days of the current month with records uploaded.", inst)
        coverage = _gauge(
            "institution_table_coverage_ratio", "Uploaded tables / required tables, current month so far.", inst
        )
        declared = _gauge(
            "institution_declared_coverage_ratio",
            "Declared tables uploaded / declared tables, current month so far (absent when nothing is declared).",
            inst,
        )
        conformance = _gauge(
            "institution_conformance_ratio",
            "Realtime vs scheduled records agreement, current month so far (absent when there are no pairs).",
            inst,
        )
        registrations = _gauge(
            "institution_kiosk_registrations", "Kiosk registration transactions in the current month.", inst
        )
        payments = _gauge("institution_kiosk_payments", "Kiosk payment transactions in the current month.", inst)
        last_upload = _gauge(
            "institution_last_upload_timestamp_seconds",
            "Latest uploaded_at of any event on the channel (the institution's clock).",
            chan,
        )
        last_received = _gauge(
            "institution_last_received_timestamp_seconds",
            "When the platform last received any event on the channel (the platform's clock).",
            chan,
        )
        scheduled = _gauge(
            "institution_scheduled_business_date_timestamp_seconds",
            "Start (platform time zone) of the latest business date the scheduled channel delivered records for.",
            inst,
        )
        offset = _gauge(
            "platform_utc_offset_seconds", "UTC offset of the platform time zone now (for day arithmetic in rules).", []
        )
        dimensions = _gauge(
            "institution_quality_ratio",
            "Completeness, conformity, linkage (1 - flawed records / records) and continuity (upload days / days"
            " of the month), current month so far (absent without records).",
            ["org_code", "kind", "dimension"],
        )
        findings = _gauge(
            "institution_quality_findings",
            "Findings of the data-quality checks (GET /v1/reports/quality), current month so far, by severity.",
            ["org_code", "kind", "severity"],
        )
        disagreement = _gauge(
            "cross_stream_disagreement_ratio",
            "|appointment calls - phone bookings of the city| / the larger, per 12320 centre, current month so far.",
            ["org_code"],
        )
        cross_figures = _gauge(
            "cross_stream_appointments",
            "A 12320 centre's appointment calls and its city's phone bookings, current month so far.",
            ["org_code", "figure"],
        )
        if snap is not None:
            for q in snap.institutions:
                labels = [q.org_code, q.kind]
                upload_days.add_metric(labels, q.upload_days)
                registrations.add_metric(labels, q.kiosk_registrations)
                payments.add_metric(labels, q.kiosk_payments)
                for family, value in ((coverage, q.table_coverage), (declared, q.declared_coverage)):
                    if value is not None:
                        family.add_metric(labels, value)
                if q.conformance is not None:
                    conformance.add_metric(labels, q.conformance)
                for dimension, ratio in q.dimensions:
                    if ratio is not None:
                        dimensions.add_metric([*labels, dimension], ratio)
                findings.add_metric([*labels, Severity.PROBLEM.value], q.problems)
                findings.add_metric([*labels, Severity.WARNING.value], q.warnings)
            for pair in snap.cross_stream:
                larger = max(pair.appointment_calls, pair.phone_bookings)
                gap = abs(pair.appointment_calls - pair.phone_bookings)
                disagreement.add_metric([pair.org_code], gap / larger if larger else 0.0)
                cross_figures.add_metric([pair.org_code, "appointment_calls"], pair.appointment_calls)
                cross_figures.add_metric([pair.org_code, "phone_bookings"], pair.phone_bookings)
            for c in snap.channels:
                last_upload.add_metric([c.org_code, c.kind, c.mode], c.last_uploaded_at.timestamp())
                last_received.add_metric([c.org_code, c.kind, c.mode], c.last_received_at.timestamp())
            for s in snap.scheduled:
                scheduled.add_metric([s.org_code, s.kind], day_start(s.business_date, snap.zone))
            offset.add_metric([], snap.utc_offset_s)
        yield from (
            upload_days,
            coverage,
            declared,
            conformance,
            registrations,
            payments,
            last_upload,
            last_received,
            scheduled,
            offset,
            dimensions,
            findings,
            disagreement,
            cross_figures,
        )


class QualityMonitor:
    """Refreshes the quality gauges every `quality_refresh_s`; started and stopped by the app's lifespan."""

    def __init__(
        self,
        settings: AggregatorSettings,
        pool: asyncpg.Pool,
        metrics: AggregatorMetrics,
        thresholds: Thresholds | None = None,
    ) -> None:
        self._settings = settings
        self._thresholds = thresholds or Thresholds()
        self._pool = pool
        self._metrics = metrics
        self._zone = ZoneInfo(settings.timezone)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Refresh in the background, first right away."""
        self._task = asyncio.create_task(self._run(), name="quality-refresh")

    async def stop(self) -> None:
        """Stop refreshing (the last snapshot stays exported)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def refresh(self, now: datetime | None = None) -> QualitySnapshot:
        """Read a new snapshot and export it; database errors propagate to the caller."""
        s = self._settings
        now = now or datetime.now(UTC)
        month = s.quality_month_date or platform_month(now, self._zone)
        started = time.perf_counter()
        async with self._pool.acquire() as conn:
            snapshot = await read_snapshot(
                conn, month, self._zone, now, timedelta(days=s.quality_scheduled_lookback_days), self._thresholds
            )
        self._metrics.quality.update(snapshot)
        self._metrics.quality_refresh_duration.observe(time.perf_counter() - started)
        self._metrics.quality_last_refresh.set(time.time())
        return snapshot

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # Keep exporting the previous snapshot; its age is visible in
                # aggregator_quality_last_refresh_timestamp_seconds (alert QualityMetricsStale).
                self._metrics.quality_refresh_errors.labels(error_type=type(exc).__name__).inc()
                log.warning("quality refresh failed; will retry", extra={"error": repr(exc)})
            await asyncio.sleep(self._settings.quality_refresh_s)
