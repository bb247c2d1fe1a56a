"""Collector application factory: settings in, a FastAPI app with its clients in the lifespan out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send

from services.collector import admin, routes
from services.collector.ingest_asgi import INGEST_PATHS, IngestEndpoint
from services.collector.intake import Intake
from services.collector.limits import RateLimiter
from services.collector.metrics import CollectorMetrics
from services.collector.publisher import DurablePublisher, KafkaPublisher
from services.collector.settings import CollectorSettings
from services.collector.spool import AsyncSpool, Spool
from services.storage.database import open_pool
from services.storage.live import LiveValue
from services.storage.months import archived_cache
from services.storage.reference import REFERENCE_CHANNEL, ReferenceSnapshot, load_snapshot
from services.streams import STREAMS
from services.topics import topic_guard
from services.web.auth import Authenticator, token_cache
from services.web.errors import install_error_handlers
from services.web.instrumentation import InstrumentationMiddleware


class CollectorApp(FastAPI):
    """The collector's FastAPI app, whose ingest POSTs go straight to a lean ASGI handler.

    Everything else (admin, health, metrics, docs, other methods on the ingest paths) takes
    FastAPI's usual stack. The ingest routes stay declared there, so the OpenAPI document
    is unchanged.
    """

    ingest: IngestEndpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one ASGI connection."""
        if scope["type"] == "http" and scope["method"] == "POST":
            stream = INGEST_PATHS.get(scope["path"])
            if stream is not None:
                await self.ingest(scope, receive, send, stream)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: CollectorSettings, registry: CollectorRegistry | None = None) -> CollectorApp:
    """Build the collector; every client is created and closed in the lifespan."""
    metrics = CollectorMetrics(registry or CollectorRegistry())
    rate_limiter = RateLimiter(settings.rate_limit_events_per_s, settings.rate_limit_burst_events)
    ingest = IngestEndpoint(metrics.http, settings.max_concurrent_requests, settings.retry_after_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_pool(settings.database_url.get_secret_value())
        reference = LiveValue(
            "reference", pool, load_snapshot, REFERENCE_CHANNEL, ReferenceSnapshot.empty(), settings.cache_refresh_s
        )
        tokens = token_cache(pool, settings.cache_refresh_s)
        archived = archived_cache(pool, settings.zone, settings.cache_refresh_s)
        # The producer starts only once the topics are as durable as configured: until then
        # nothing is acknowledged by a weaker topic (requests go to the spool).
        topics = topic_guard(settings, metrics.kafka_topics_below_settings.set)
        kafka = KafkaPublisher(
            settings.kafka_bootstrap,
            settings.events_topic,
            settings.publish_timeout_s,
            metrics,
            settings.producer_linger_ms,
            prepare=topics.until_ok,
            probe_s=settings.kafka_probe_s,
        )
        spool = await asyncio.to_thread(
            Spool,
            settings.spool_dir,
            settings.spool_max_bytes,
            settings.spool_segment_bytes,
            lambda damage: metrics.spool_damaged_bytes.labels(kind=damage.kind).inc(damage.length),
        )
        publisher = DurablePublisher(kafka, AsyncSpool(spool), metrics)
        authenticator = Authenticator(settings.admin_token.get_secret_value(), tokens)
        intake = Intake(metrics, publisher, reference, rate_limiter, settings.retry_after_s, archived)
        app.state.pool = pool
        app.state.topics = topics
        app.state.reference = reference
        app.state.archived_months = archived
        app.state.authenticator = authenticator
        app.state.publisher = publisher
        app.state.intake = intake
        ingest.bind(authenticator, intake)
        await reference.start()
        await tokens.start()
        await archived.start()
        await publisher.start()
        try:
            yield
        finally:
            await publisher.stop()
            await tokens.stop()
            await archived.stop()
            await reference.stop()
            await pool.close()

    app = CollectorApp(
        title="Health upload telemetry: collector",
        version="1",
        summary="Institutions post upload events and kiosk transactions here (contract v1).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.rate_limiter = rate_limiter
    install_error_handlers(app)
    app.include_router(routes.ingest_router(STREAMS.values()))
    app.include_router(routes.router)
    app.include_router(admin.router)
    # The ingest POSTs are counted, timed and limited by their own handler.
    app.add_middleware(InstrumentationMiddleware, metrics=metrics.http)
    app.ingest = ingest
    return app
