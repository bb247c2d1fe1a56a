"""Collector settings, from `TELEMETRY_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.settings import CommonSettings


class CollectorSettings(CommonSettings):
    """Everything the collector reads from the environment."""

    collector_host: str = "127.0.0.1"
    collector_port: int = Field(8080, ge=1, le=65535)
    publish_timeout_s: float = Field(5.0, gt=0, description="wait this long for the broker's ack before 503")
    retry_after_s: int = Field(5, ge=1, description="Retry-After sent with 503")
    cache_refresh_s: float = Field(5.0, gt=0)
    producer_linger_ms: int = Field(2, ge=0)
    kafka_probe_s: float = Field(5.0, gt=0, description="how often collector_kafka_up is re-checked")
    rate_limit_events_per_s: float = Field(
        20_000, gt=0, description="steady events/s allowed per institution token (admin not limited)"
    )
    rate_limit_burst_events: float = Field(100_000, gt=0, description="events an institution may send at once")
    max_concurrent_requests: int = Field(512, ge=1, description="ingest requests in progress before 503")
    spool_dir: Path = Field(Path(".state/collector-spool"), description="fsync'ed spool for broker outages")
    spool_max_bytes: int = Field(1024**3, ge=1024, description="spool size at which ingest answers 503")
    spool_segment_bytes: int = Field(
        64 * 1024**2, ge=1024, description="size at which the spool starts a new segment file (small in tests)"
    )
