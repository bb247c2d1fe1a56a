"""Collector application factory: settings in, a FastAPI app with its clients in the lifespan out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.collector import admin, routes
from services.collector.limits import ConcurrencyLimitMiddleware, RateLimiter
from services.collector.metrics import CollectorMetrics
from services.collector.publisher import DurablePublisher, KafkaPublisher
from services.collector.settings import CollectorSettings
from services.collector.spool import AsyncSpool, Spool
from services.storage.database import open_pool
from services.storage.live import LiveValue
from services.storage.reference import REFERENCE_CHANNEL, ReferenceSnapshot, load_snapshot
from services.topics import ensure_topics, event_topics
from services.web.auth import Authenticator, token_cache
from services.web.errors import install_error_handlers
from services.web.instrumentation import InstrumentationMiddleware


def create_app(settings: CollectorSettings, registry: CollectorRegistry | None = None) -> FastAPI:
    """Build the collector; every client is created and closed in the lifespan."""
    metrics = CollectorMetrics(registry or CollectorRegistry())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_pool(settings.database_url.get_secret_value())
        reference = LiveValue(
            "reference", pool, load_snapshot, REFERENCE_CHANNEL, ReferenceSnapshot.empty(), settings.cache_refresh_s
        )
        tokens = token_cache(pool, settings.cache_refresh_s)
        kafka = KafkaPublisher(
            settings.kafka_bootstrap,
            settings.events_topic,
            settings.publish_timeout_s,
            metrics,
            settings.producer_linger_ms,
            prepare=lambda: prepare_topics(settings),
            probe_s=settings.kafka_probe_s,
        )
        spool = await asyncio.to_thread(Spool, settings.spool_dir, settings.spool_max_bytes)
        publisher = DurablePublisher(kafka, AsyncSpool(spool), metrics)
        app.state.pool = pool
        app.state.reference = reference
        app.state.authenticator = Authenticator(settings.admin_token.get_secret_value(), tokens)
        app.state.publisher = publisher
        await reference.start()
        await tokens.start()
        await publisher.start()
        try:
            yield
        finally:
            await publisher.stop()
            await tokens.stop()
            await reference.stop()
            await pool.close()

    app = FastAPI(
        title="Health upload telemetry: collector",
        version="1",
        summary="Institutions post upload events and kiosk transactions here (contract v1).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.rate_limiter = RateLimiter(settings.rate_limit_events_per_s, settings.rate_limit_burst_events)
    install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(admin.router)
    app.add_middleware(
        ConcurrencyLimitMiddleware,
        limit=settings.max_concurrent_requests,
        paths=("/v1/uploads", "/v1/kiosk-transactions"),
        retry_after_s=settings.retry_after_s,
    )
    # Added last, so it is outermost and also counts the requests the limit refuses.
    app.add_middleware(InstrumentationMiddleware, metrics=metrics.http)
    return app


async def prepare_topics(settings: CollectorSettings) -> None:
    """Make sure the topics exist before serving (idempotent)."""
    await ensure_topics(
        settings.kafka_bootstrap,
        event_topics(
            settings.events_topic,
            settings.dead_letter_topic,
            settings.events_partitions,
            settings.events_replication_factor,
        ),
    )
