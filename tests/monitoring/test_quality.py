"""The data-quality gauges (services/aggregator/quality.py) and collector_kafka_up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.quality import QualityMonitor, day_start
from services.aggregator.settings import AggregatorSettings
from services.collector.app import create_app as create_collector
from services.contract.models import InstitutionKind
from services.quality.report import quality_report
from services.quality.settings import Thresholds
from services.streams.kiosk.report import kiosks_report
from services.streams.uploads.report import uploads_report
from tests.fixtures.demo import DEMO_MONTH
from tests.fixtures.events import load_reference, upload
from tests.fixtures.stack import ADMIN_TOKEN, StackConfig, admin_headers, aggregator_running, running, wait_for

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 07:00 on the first morning after the demo month: the batch for 30 April is in.
AFTER_THE_MONTH = datetime(2020, 5, 1, 7, 0, tzinfo=SHANGHAI)
# The institutions of the upload reports in the demo reference set: 12 districts and 48
# hospitals (the gauges are theirs; hotline centres and other institutions upload nothing).
UPLOAD_INSTITUTIONS = 12 + 48
INSTITUTION_GAUGES = (
    "aggregator_institution_upload_days",
    "aggregator_institution_table_coverage_ratio",
    "aggregator_institution_declared_coverage_ratio",
    "aggregator_institution_conformance_ratio",
    "aggregator_institution_kiosk_registrations",
    "aggregator_institution_kiosk_payments",
    "aggregator_institution_scheduled_business_date_timestamp_seconds",
)
CHANNEL_GAUGES = (
    "aggregator_institution_last_upload_timestamp_seconds",
    "aggregator_institution_last_received_timestamp_seconds",
)


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name
    }


@pytest_asyncio.fixture(scope="module")
async def demo_pool(demo_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the demo month's database."""
    pool = await asyncpg.create_pool(demo_database_url, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


def _monitor(pool: asyncpg.Pool, **overrides: object) -> tuple[QualityMonitor, AggregatorMetrics]:
    values: dict[str, object] = {"admin_token": ADMIN_TOKEN, "quality_month": "2020-04"}
    values.update(overrides)
    metrics = AggregatorMetrics(CollectorRegistry())
    return QualityMonitor(AggregatorSettings(**values), pool, metrics), metrics


async def test_gauges_are_the_reports_figures(demo_pool: asyncpg.Pool) -> None:
    monitor, metrics = _monitor(demo_pool)
    await monitor.refresh(now=AFTER_THE_MONTH)
    registry = metrics.registry
    async with demo_pool.acquire() as conn:
        rows = [
            *await uploads_report(conn, DEMO_MONTH, InstitutionKind.DISTRICT, None),
            *await uploads_report(conn, DEMO_MONTH, InstitutionKind.HOSPITAL, None),
        ]
        kiosk_rows = {r.org_code: r for r in await kiosks_report(conn, DEMO_MONTH, None) if r.org_code}
    assert len(rows) == UPLOAD_INSTITUTIONS

    def gauge(name: str) -> dict[str, float]:
        return {dict(k)["org_code"]: v for k, v in _samples(registry, name).items()}

    assert gauge("aggregator_institution_upload_days") == {r.org_code: r.upload_days for r in rows}
    assert gauge("aggregator_institution_table_coverage_ratio") == {r.org_code: r.table_coverage_rate for r in rows}
    # A rate the report has as null is an absent series, not a 0.
    declared = {r.org_code: r.declared_coverage_rate for r in rows if r.declared_coverage_rate is not None}
    assert 0 < len(declared) < len(rows)
    assert gauge("aggregator_institution_declared_coverage_ratio") == declared
    conformance = {r.org_code: r.conformance_rate for r in rows if r.conformance_rate is not None}
    assert 0 < len(conformance) < len(rows)
    assert gauge("aggregator_institution_conformance_ratio") == conformance
    assert gauge("aggregator_institution_kiosk_registrations") == {o: r.registrations for o, r in kiosk_rows.items()}
    assert gauge("aggregator_institution_kiosk_payments") == {o: r.payments for o, r in kiosk_rows.items()}
    # The high-water mark of the figures (the bulletin's 高淳区: interface down 8-18 April).
    assert gauge("aggregator_institution_upload_days")["D320118"] == 19
    assert metrics.registry.get_sample_value("aggregator_platform_utc_offset_seconds") == 8 * 3600
    assert (metrics.registry.get_sample_value("aggregator_quality_last_refresh_timestamp_seconds") or 0) > 0


async def test_quality_gauges_are_the_reports_and_the_checks(demo_pool: asyncpg.Pool) -> None:
    monitor, metrics = _monitor(demo_pool)
    await monitor.refresh(now=AFTER_THE_MONTH)
    async with demo_pool.acquire() as conn:
        rows = [
            *await uploads_report(conn, DEMO_MONTH, InstitutionKind.DISTRICT, None),
            *await uploads_report(conn, DEMO_MONTH, InstitutionKind.HOSPITAL, None),
        ]
        report = await quality_report(
            conn, DEMO_MONTH, None, zone=SHANGHAI, thresholds=Thresholds(), now=AFTER_THE_MONTH
        )
    ratios = {
        (dict(k)["org_code"], dict(k)["dimension"]): v
        for k, v in _samples(metrics.registry, "aggregator_institution_quality_ratio").items()
    }
    expected = {
        (r.org_code, dimension): value
        for r in rows
        for dimension, value in (
            ("completeness", r.completeness_rate),
            ("conformity", r.conformity_rate),
            ("linkage", r.linkage_rate),
            ("continuity", r.continuity_rate),
        )
        if value is not None
    }
    assert ratios == expected and len(expected) > len(rows)
    findings = {
        (dict(k)["org_code"], dict(k)["severity"]): v
        for k, v in _samples(metrics.registry, "aggregator_institution_quality_findings").items()
    }
    upload_orgs = {r.org_code for r in rows}
    for org in upload_orgs:
        mine = [f.severity.value for f in report.rows if f.org_code == org]
        assert (findings[(org, "problem")], findings[(org, "warning")]) == (
            mine.count("problem"),
            mine.count("warning"),
        )
    assert sum(findings.values()) > 0
    # The demo's 12320 centre: 81,506 appointment calls, 81,506 phone bookings in its city.
    pairs = {
        (dict(k)["org_code"], dict(k)["figure"]): v
        for k, v in _samples(metrics.registry, "aggregator_cross_stream_appointments").items()
    }
    assert {figure: v for (_, figure), v in pairs.items()} == {"appointment_calls": 81_506, "phone_bookings": 81_506}
    assert list(_samples(metrics.registry, "aggregator_cross_stream_disagreement_ratio").values()) == [0.0]


async def test_liveness_gauges_per_channel(demo_pool: asyncpg.Pool) -> None:
    monitor, metrics = _monitor(demo_pool)
    await monitor.refresh(now=AFTER_THE_MONTH)
    async with demo_pool.acquire() as conn:
        seen = await conn.fetch("SELECT org_code, mode, last_uploaded_at, last_received_at FROM channel_last_seen")
    uploaded = _samples(metrics.registry, "aggregator_institution_last_upload_timestamp_seconds")
    received = _samples(metrics.registry, "aggregator_institution_last_received_timestamp_seconds")
    by_channel = {(dict(k)["org_code"], dict(k)["mode"]): v for k, v in uploaded.items()}
    assert by_channel == {(r["org_code"], r["mode"]): r["last_uploaded_at"].timestamp() for r in seen}
    assert {(dict(k)["org_code"], dict(k)["mode"]): v for k, v in received.items()} == {
        (r["org_code"], r["mode"]): r["last_received_at"].timestamp() for r in seen
    }
    assert {dict(k)["mode"] for k in uploaded} == {"realtime", "scheduled"}


async def test_scheduled_business_date_is_the_latest_nightly_batch(demo_pool: asyncpg.Pool) -> None:
    monitor, metrics = _monitor(demo_pool)
    await monitor.refresh(now=AFTER_THE_MONTH)
    values = _samples(metrics.registry, "aggregator_institution_scheduled_business_date_timestamp_seconds")
    # Every institution with a nightly batch has sent the one for 30 April by 07:00 on 1 May.
    assert len(values) > 30
    assert set(values.values()) == {day_start(date(2020, 4, 30), SHANGHAI)}
    assert day_start(date(2020, 4, 30), SHANGHAI) == datetime(2020, 4, 29, 16, tzinfo=UTC).timestamp()
    # Past the lookback, an institution is no longer expected to send a batch.
    await monitor.refresh(now=AFTER_THE_MONTH + timedelta(days=9))
    assert _samples(metrics.registry, "aggregator_institution_scheduled_business_date_timestamp_seconds") == {}


async def test_labels_are_bounded(demo_pool: asyncpg.Pool) -> None:
    monitor, metrics = _monitor(demo_pool)
    await monitor.refresh(now=AFTER_THE_MONTH)
    institutions = UPLOAD_INSTITUTIONS
    for name in INSTITUTION_GAUGES:
        samples = _samples(metrics.registry, name)
        assert {tuple(k for k, _ in labels) for labels in samples} <= {("kind", "org_code")}, name
        assert len(samples) <= institutions, name
    for name in CHANNEL_GAUGES:
        samples = _samples(metrics.registry, name)
        assert {tuple(k for k, _ in labels) for labels in samples} == {("kind", "mode", "org_code")}, name
        assert len(samples) <= 2 * institutions, name


async def test_the_current_month_by_default(demo_pool: asyncpg.Pool) -> None:
    monitor, _ = _monitor(demo_pool, quality_month=None)
    snapshot = await monitor.refresh(now=datetime(2020, 4, 30, 16, 30, tzinfo=UTC))  # 1 May 00:30 in Shanghai
    assert snapshot.month == date(2020, 5, 1)
    assert sum(q.upload_days for q in snapshot.institutions) > 0  # the nightly batches of 1 May


async def test_a_failing_refresh_keeps_the_last_figures_and_is_counted(demo_database_url: str) -> None:
    pool = await asyncpg.create_pool(demo_database_url, min_size=1, max_size=2)
    monitor, metrics = _monitor(pool, quality_refresh_s=0.05)
    try:
        await monitor.start()

        async def refreshed() -> bool:
            return bool(metrics.registry.get_sample_value("aggregator_quality_last_refresh_timestamp_seconds"))

        await wait_for(refreshed, "a first refresh")
    finally:
        await pool.close()  # every later refresh fails

    async def counted() -> bool:
        errors = [
            s.value
            for f in metrics.registry.collect()
            for s in f.samples
            if s.name == "aggregator_quality_refresh_errors_total"
        ]
        return sum(errors) >= 2

    try:
        await wait_for(counted, "refresh errors counted")
    finally:
        await monitor.stop()
    assert len(_samples(metrics.registry, "aggregator_institution_upload_days")) == UPLOAD_INSTITUTIONS


async def test_the_aggregator_refreshes_its_gauges_in_the_background(
    stack_config: StackConfig, collector: httpx.AsyncClient
) -> None:
    """End to end: an upload posted now shows in the running aggregator's metrics."""
    await load_reference(collector, admin_headers())
    now = datetime.now(SHANGHAI)
    yesterday = (now - timedelta(days=1)).date().isoformat()
    events = [
        upload(org_code="D1", mode="realtime", business_date=now.date().isoformat(), uploaded_at=now.isoformat()),
        upload(org_code="D1", mode="scheduled", business_date=yesterday, uploaded_at=now.isoformat()),
    ]
    response = await collector.post("/v1/uploads", json={"events": events}, headers=admin_headers())
    assert response.status_code == 202, response.text
    async with aggregator_running(stack_config, quality_refresh_s=0.2) as aggregator:

        async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            # The metrics have a listener of their own, apart from the report API.
            listener = aggregator.app.state.metrics_listener  # type: ignore[attr-defined]
            async with httpx.AsyncClient(base_url=listener.url) as scraper:
                text = (await scraper.get("/metrics")).text
            return {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }

        d1 = (("kind", "district"), ("org_code", "D1"))

        async def shown() -> bool:
            return (await scrape()).get(("aggregator_institution_upload_days", d1)) == 1

        await wait_for(shown, "D1's upload day in the metrics")
        metrics = await scrape()
    assert metrics[("aggregator_institution_upload_days", (("kind", "district"), ("org_code", "D2")))] == 0
    assert metrics[("aggregator_institution_scheduled_business_date_timestamp_seconds", d1)] == day_start(
        date.fromisoformat(yesterday), SHANGHAI
    )
    received = metrics[
        ("aggregator_institution_last_received_timestamp_seconds", (*d1[:1], ("mode", "scheduled"), *d1[1:]))
    ]
    assert abs(received - now.timestamp()) < 120


async def test_collector_kafka_up_follows_the_broker(stack_config: StackConfig) -> None:
    registry = CollectorRegistry()
    app = create_collector(stack_config.collector_settings(kafka_probe_s=0.1), registry)
    async with running(app, "http://collector"):

        async def up() -> bool:
            return registry.get_sample_value("collector_kafka_up") == 1

        await wait_for(up, "collector_kafka_up == 1")

    # A broker that is not there: the gauge says so without any request to /readyz.
    registry = CollectorRegistry()
    app = create_collector(stack_config.collector_settings(kafka_bootstrap="127.0.0.1:9", kafka_probe_s=0.1), registry)
    async with running(app, "http://collector") as client:
        await asyncio.sleep(0.5)
        assert registry.get_sample_value("collector_kafka_up") == 0
        assert (await client.get("/readyz")).status_code == 503
