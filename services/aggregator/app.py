"""Aggregator application factory: the consumer runs as a task in the HTTP app's lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.aggregator import receipts, routes
from services.aggregator.consumer import EventConsumer
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.quality import QualityMonitor
from services.aggregator.restated import RestatementMonitor
from services.aggregator.settings import AggregatorSettings
from services.aggregator.store import check_time_zone
from services.bulletin.service import settings_of as bulletin_settings_of
from services.pages import routes as pages
from services.pages.sessions import Sessions
from services.quality.settings import Thresholds
from services.quality.settings import settings_of as quality_settings_of
from services.storage.database import open_pool
from services.storage.months import archive_due, archived_cache
from services.topics import topic_guard
from services.web.auth import Authenticator, token_cache
from services.web.errors import install_error_handlers
from services.web.instrumentation import InstrumentationMiddleware
from services.web.metrics_listener import start_metrics_listener

log = logging.getLogger(__name__)


def create_app(settings: AggregatorSettings, registry: CollectorRegistry | None = None) -> FastAPI:
    """Build the aggregator; pool, token cache and consumer live in the lifespan."""
    metrics = AggregatorMetrics(registry or CollectorRegistry())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_pool(
            settings.database_url.get_secret_value(),
            max_size=settings.db_pool_size,
            # A paused (SIGSTOP) aggregator must not hold the offsets' row locks forever: its
            # session is ended and whoever owns the partitions now can go on.
            server_settings={"idle_in_transaction_session_timeout": "30s", "lock_timeout": "10s"},
        )
        async with pool.acquire() as conn:
            await check_time_zone(conn, settings.timezone)
        # Creates the missing topics before the consumer subscribes. Topics less durable than
        # configured do not stop the consumer (reading them loses nothing) but keep /readyz at
        # 503, re-checked in the background until an operator fixes them.
        topics = topic_guard(settings, metrics.kafka_topics_below_settings.set)
        await topics.check()
        app.state.topics = topics
        topic_check = None if topics.ok else asyncio.create_task(topics.until_ok(checked=True), name="topic-check")
        tokens = token_cache(pool, settings.cache_refresh_s)
        await tokens.start()
        archived = archived_cache(pool, settings.zone, settings.cache_refresh_s)
        await archived.start()
        consumer = EventConsumer(settings, pool, metrics, archived)
        app.state.pool = pool
        app.state.authenticator = Authenticator(settings.admin_token.get_secret_value(), tokens)
        app.state.sessions = Sessions(
            settings.admin_token.get_secret_value(), tokens, timedelta(hours=settings.page_session_hours)
        )
        app.state.consumer = consumer
        app.state.consumer_task = asyncio.create_task(consumer.run(), name="consumer")
        app.state.consumer_task.add_done_callback(_report_exit)
        thresholds = Thresholds.of(
            quality_settings_of(app.state), bulletin_settings_of(app.state).conformance_threshold
        )
        quality = QualityMonitor(settings, pool, metrics, thresholds)
        app.state.quality = quality
        await quality.start()
        restated = RestatementMonitor(pool, metrics, settings.zone, settings.restatements_refresh_s)
        app.state.restated = restated
        await restated.start()
        listener = start_metrics_listener(
            metrics.registry, settings.aggregator_metrics_host, settings.aggregator_metrics_port
        )
        app.state.metrics_listener = listener
        log.info("metrics listener started", extra={"url": listener.url})
        archiver = asyncio.create_task(archive_past_horizon(pool, settings), name="archiver")
        try:
            yield
        finally:
            archiver.cancel()
            await asyncio.gather(archiver, return_exceptions=True)
            listener.stop()
            await restated.stop()
            await quality.stop()
            if topic_check is not None:
                topic_check.cancel()
                await asyncio.gather(topic_check, return_exceptions=True)
            consumer.stop()
            await asyncio.gather(app.state.consumer_task, return_exceptions=True)
            await tokens.stop()
            await archived.stop()
            await pool.close()

    app = FastAPI(
        title="Health upload telemetry: aggregator",
        version="1",
        summary="Monthly upload and kiosk reports computed from the event stream (contract v1).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.consumer_task = None
    # One figures-as-of computation at a time (services/aggregator/routes.py, _as_of_slot).
    app.state.as_of_gate = asyncio.Lock()
    install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(receipts.router)
    app.include_router(pages.router)
    app.add_middleware(InstrumentationMiddleware, metrics=metrics.http)
    return app


async def archive_past_horizon(pool: asyncpg.Pool, settings: AggregatorSettings) -> None:
    """Archive the months closed longer than the dedupe horizon, now and every `archive_check_s`."""
    horizon = timedelta(days=settings.dedupe_horizon_days)
    while True:
        try:
            async with pool.acquire() as conn:
                done = await archive_due(conn, horizon, datetime.now(UTC))
            if done:
                log.info("months archived after the dedupe horizon", extra={"months": [f"{m:%Y-%m}" for m in done]})
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("archiving past the horizon failed; will retry", extra={"error": repr(exc)})
        await asyncio.sleep(settings.archive_check_s)


def _report_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("consumer stopped with an error", exc_info=task.exception())
